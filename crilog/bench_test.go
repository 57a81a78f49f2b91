package crilog

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// cpuTime returns the user plus system CPU time of the process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU adds the CPU time per op since start to the benchmark result,
// a figure that other load on the machine disturbs less than wall time.
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N)/1e6, "cpu-ms/op")
}

// benchBytes is how much each benchmark iteration writes.
const benchBytes = 256 << 20

// repeatReader yields left bytes of block repeated (zeros if block is nil).
type repeatReader struct {
	block []byte
	off   int
	left  int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	p = p[:min(len(p), r.left)]
	if r.block == nil {
		clear(p)
	} else {
		for n := 0; n < len(p); {
			c := copy(p[n:], r.block[r.off:])
			n += c
			r.off = (r.off + c) % len(r.block)
		}
	}
	r.left -= len(p)
	return len(p), nil
}

// textBlock is 1 MiB of log-like lines of 40 to 160 bytes.
func textBlock() []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < 1<<20; i++ {
		fmt.Fprintf(&b, "level=info msg=\"request %d served\" path=/api/v1/items status=200 %s\n",
			i, bytes.Repeat([]byte{'x'}, i%120))
	}
	return b.Bytes()[:1<<20]
}

// inputs are the two kinds of output the benchmarks copy.
var inputs = []struct {
	name  string
	block func() []byte
}{
	{"zeros", func() []byte { return nil }},
	{"text", textBlock},
}

// BenchmarkCopy copies 256 MiB through Writer.Copy into a log file.
func BenchmarkCopy(b *testing.B) {
	for _, in := range inputs {
		b.Run(in.name, func(b *testing.B) {
			block := in.block()
			path := filepath.Join(b.TempDir(), "ctr.log")
			b.SetBytes(benchBytes)
			defer reportCPU(b, cpuTime())
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				os.Remove(path)
				b.StartTimer()
				w, err := Open(path, Options{})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := w.Copy(Stdout, &repeatReader{block: block, left: benchBytes}, nil); err != nil {
					b.Fatal(err)
				}
				if err := w.Close(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDirectWrite writes the same bytes as BenchmarkCopy straight to a
// file with the same read size: the baseline for Copy's throughput.
func BenchmarkDirectWrite(b *testing.B) {
	for _, in := range inputs {
		b.Run(in.name, func(b *testing.B) {
			block := in.block()
			path := filepath.Join(b.TempDir(), "raw")
			buf := make([]byte, copyBufSize)
			b.SetBytes(benchBytes)
			defer reportCPU(b, cpuTime())
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				os.Remove(path)
				b.StartTimer()
				f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
				if err != nil {
					b.Fatal(err)
				}
				r := &repeatReader{block: block, left: benchBytes}
				for {
					n, err := r.Read(buf)
					if err == io.EOF {
						break
					}
					if _, err := f.Write(buf[:n]); err != nil {
						b.Fatal(err)
					}
				}
				if err := f.Close(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

package crilog

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// randomChunks returns n writes of random lines, some without newline.
func randomChunks(rng *rand.Rand, n, maxLen int) []chunk {
	chunks := make([]chunk, n)
	for i := range chunks {
		s := Stdout
		if rng.IntN(3) == 0 {
			s = Stderr
		}
		var b strings.Builder
		for range rng.IntN(4) + 1 {
			fmt.Fprintf(&b, "%d:%s", i, strings.Repeat("x", rng.IntN(maxLen)))
			if rng.IntN(4) != 0 {
				b.WriteByte('\n')
			}
		}
		chunks[i] = chunk{s, b.String()}
	}
	return chunks
}

func TestRotation(t *testing.T) {
	const maxSize, maxFiles = 1000, 3
	chunks := randomChunks(rand.New(rand.NewPCG(1, 2)), 600, 120)
	ref := logPath(t)
	writeChunks(t, ref, Options{}, chunks)
	_, all := decodeAll(t, ref)

	path := logPath(t)
	writeChunks(t, path, Options{MaxSize: maxSize, MaxFiles: maxFiles}, chunks)
	names, err := Files(path)
	if err != nil {
		t.Fatal(err)
	}
	wantNames := []string{path + ".3", path + ".2", path + ".1", path}
	if !slices.Equal(names, wantNames) {
		t.Fatalf("Files = %q, want %q", names, wantNames)
	}
	for _, name := range names {
		fi, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() > maxSize || fi.Size() == 0 {
			t.Errorf("%s has %d bytes, want 1..%d", name, fi.Size(), maxSize)
		}
	}
	if _, err := os.Stat(path + ".next"); !os.IsNotExist(err) {
		t.Errorf("temporary file left behind: %v", err)
	}
	_, kept := decodeAll(t, path)
	if len(kept) < 3*maxSize/200 || !reflect.DeepEqual(kept, all[len(all)-len(kept):]) {
		t.Fatalf("rotated files hold %d entries that are not the newest of the %d written", len(kept), len(all))
	}
}

func TestRotationEntryLargerThanMaxSize(t *testing.T) {
	path := logPath(t)
	long := strings.Repeat("y", 300)
	writeChunks(t, path, Options{MaxSize: 100, MaxFiles: 0}, []chunk{
		{Stdout, long + "\n" + long + "\n"}, {Stderr, "short\n"},
	})
	names, _ := Files(path)
	if !slices.Equal(names, []string{path + ".1", path}) {
		t.Fatalf("Files = %q; MaxFiles 0 should keep one rotated file", names)
	}
	for _, name := range names {
		data, _ := os.ReadFile(name)
		if strings.Count(string(data), "\n") != 1 {
			t.Errorf("%s holds %q, want exactly one entry", name, data)
		}
	}
	if out, errOut := dump(t, path, ReadOptions{Tail: -1}); out != long+"\n" || errOut != "short\n" {
		t.Errorf("Dump = %q, %q", out, errOut)
	}
}

func TestFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ctr.log")
	for _, name := range []string{"ctr.log", "ctr.log.1", "ctr.log.10", "ctr.log.2",
		"ctr.log.01", "ctr.log.0", "ctr.log.x", "ctr.log.next", "ctr.log.1.gz", "other.log.3"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	names, err := Files(path)
	want := []string{path + ".10", path + ".2", path + ".1", path}
	if err != nil || !slices.Equal(names, want) {
		t.Errorf("Files = %q, %v; want %q", names, err, want)
	}
	if names, err := Files(filepath.Join(dir, "missing", "x.log")); err != nil || len(names) != 0 {
		t.Errorf("Files of a missing log = %q, %v", names, err)
	}
}

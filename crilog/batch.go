package crilog

import (
	"io"
	"os"
	"syscall"
	"unsafe"
)

const (
	// smallEntry is the size up to which an entry is copied into the
	// batch's stage; larger ones are passed to the kernel in place.
	smallEntry = 512
	// stageSize is the capacity of the stage, allocated at the first
	// write. Output of short lines is written in pieces of this size, and
	// the kernel handles large writes markedly cheaper per byte.
	stageSize = 512 << 10
	// maxIov is the most vectors one writev(2) takes (IOV_MAX on Linux).
	maxIov = 1024
)

// nl is the newline that ends a P entry.
var nl = []byte{'\n'}

// batch gathers encoded entries as an I/O vector, so that one writev(2)
// writes many entries and long texts reach the kernel without being copied
// first. The vectors point into the caller's data, so a batch must be
// written before that data changes. Small entries are copied into stage,
// whose backing array never moves: it is allocated once and never grown.
type batch struct {
	iov    []syscall.Iovec
	mem    offHeap // stage's backing array, off the Go heap
	stage  []byte
	staged bool  // the last vector points at the end of stage
	n      int64 // bytes in the batch
}

// room reports whether an entry of size bytes fits without writing first.
func (b *batch) room(size int) bool {
	if b.stage == nil {
		b.mem = newOffHeap(stageSize)
		b.stage = b.mem.b[:0]
	}
	return len(b.iov)+3 <= maxIov && b.n < flushAt &&
		(size > smallEntry || len(b.stage)+size <= cap(b.stage))
}

// add appends the entry hdr+text+end; room must have been checked.
func (b *batch) add(hdr, text, end []byte) {
	size := len(hdr) + len(text) + len(end)
	b.n += int64(size)
	if size > smallEntry {
		b.vec(hdr)
		b.vec(text)
		b.vec(end)
		return
	}
	start := len(b.stage)
	b.stage = append(b.stage, hdr...)
	b.stage = append(b.stage, text...)
	b.stage = append(b.stage, end...)
	if b.staged {
		b.iov[len(b.iov)-1].SetLen(int(b.iov[len(b.iov)-1].Len) + size)
		return
	}
	b.vec(b.stage[start:])
	b.staged = true
}

// vec appends one vector for p.
func (b *batch) vec(p []byte) {
	if len(p) > 0 {
		v := syscall.Iovec{Base: &p[0]}
		v.SetLen(len(p))
		b.iov = append(b.iov, v)
		b.staged = false
	}
}

// free releases the stage; the batch must be empty and is not used again.
func (b *batch) free() {
	b.stage = nil
	b.mem.free()
}

// reset empties the batch.
func (b *batch) reset() {
	clear(b.iov) // drop the pointers into callers' data
	b.iov, b.stage, b.staged, b.n = b.iov[:0], b.stage[:0], false, 0
}

// writeTo writes the batch to f with writev(2), empties it, and returns
// how many bytes were written.
func (b *batch) writeTo(f *os.File) (int64, error) {
	defer b.reset()
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, err
	}
	var written int64
	var werr error
	iov := b.iov
	err = rc.Write(func(fd uintptr) bool {
		for len(iov) > 0 && werr == nil {
			n, _, e := syscall.Syscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
			switch {
			case e == syscall.EINTR:
			case e != 0:
				werr = e
			case n == 0:
				werr = io.ErrShortWrite
			default:
				written += int64(n)
				iov = advance(iov, int64(n))
			}
		}
		return true
	})
	if err == nil {
		err = werr
	}
	return written, err
}

// advance drops the first n bytes from iov.
func advance(iov []syscall.Iovec, n int64) []syscall.Iovec {
	for n > 0 {
		l := int64(iov[0].Len)
		if n < l {
			iov[0].Base = (*byte)(unsafe.Add(unsafe.Pointer(iov[0].Base), n))
			iov[0].SetLen(int(l - n))
			return iov
		}
		n -= l
		iov = iov[1:]
	}
	return iov
}

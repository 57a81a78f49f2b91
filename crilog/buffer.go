package crilog

import "syscall"

// Buffers of the copy path. A Writer's stage and Copy's read buffer are
// large (512 KiB and 256 KiB) and live as long as the log and the copy, so
// in a small long-lived process such as a shim they would dominate the Go
// heap: they count as live heap, so the collector's goal grows with them
// and collections come sooner and cost more, and memory they reuse comes
// back zeroed, that is touched. They are mapped outside the Go heap
// instead (anonymous mmap): only the pages that output actually reaches
// become resident, the collector never sees them, and they are unmapped
// when done. They hold bytes only, never Go pointers.

// offHeap is a buffer mapped outside the Go heap, or allocated on it when
// mapping fails.
type offHeap struct {
	b      []byte
	mapped bool
}

// newOffHeap returns a zeroed buffer of n bytes.
func newOffHeap(n int) offHeap {
	b, err := syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANONYMOUS)
	if err != nil {
		return offHeap{b: make([]byte, n)}
	}
	return offHeap{b: b, mapped: true}
}

// free releases the buffer; it must not be used afterwards.
func (o *offHeap) free() {
	if o.mapped {
		syscall.Munmap(o.b)
	}
	*o = offHeap{}
}

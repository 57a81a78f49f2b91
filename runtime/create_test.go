package runtime

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/tether-run/tether/store"
)

// TestD5ReadyReadErrorKept: a ready pipe that fails for another reason
// than the deadline keeps its own error (it was printed as
// "waiting for the shim: %!w(<nil>)").
func TestD5ReadyReadErrorKept(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	r.Close() // reading it now fails with os.ErrClosed, not EOF
	_, err = readReady(context.Background(), r, store.At(t.TempDir(), "c1"))
	if err == nil || strings.Contains(err.Error(), "%!") || !errors.Is(err, os.ErrClosed) {
		t.Fatalf("got %v, want the pipe's own error", err)
	}
}

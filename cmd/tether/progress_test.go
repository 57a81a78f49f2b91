package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/containerd/console"
	"golang.org/x/sys/unix"
)

// TestProgress: forEach shows a counter on a terminal, erased at the end
// and before each failure line; piped, it prints the failures only.
func TestProgress(t *testing.T) {
	ids := []string{"a", "b", "c"}
	do := func(_ context.Context, id string) error {
		if id == "b" {
			return errors.New("b failed")
		}
		return nil
	}

	var piped bytes.Buffer
	err := forEach(context.Background(), &globals{stderr: &piped}, "deleting", ids, do)
	if err == nil || piped.String() != "tether deleting: b failed\n" {
		t.Errorf("piped: %v, %q; want the failure line only", err, piped.String())
	}

	master, slavePath, err := console.NewPty()
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()
	slave, err := os.OpenFile(slavePath, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := forEach(context.Background(), &globals{stderr: slave}, "deleting", ids, do); err == nil {
		t.Error("a failure was not reported")
	}
	slave.Close()
	b, _ := io.ReadAll(master) // EIO once the slave is closed and drained
	out := string(b)
	const erase = "\r\033[K"
	for _, want := range []string{erase + "deleting 3/3", "b failed"} {
		if !strings.Contains(out, want) {
			t.Errorf("terminal output %q lacks %q", out, want)
		}
	}
	if !strings.HasSuffix(out, "deleting 3/3"+erase) {
		t.Errorf("terminal output %q: the counter is not erased at the end", out)
	}
}

// TestBusy: busy shows what is being done and for how long on a terminal,
// and erases it when done; piped, it shows nothing.
func TestBusy(t *testing.T) {
	var piped bytes.Buffer
	busy(&piped, "restoring c2")()
	if piped.Len() != 0 {
		t.Errorf("piped: %q; want nothing", piped.String())
	}
	master, slavePath, err := console.NewPty()
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()
	slave, err := os.OpenFile(slavePath, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	done := busy(slave, "restoring c2")
	time.Sleep(busyTick + busyTick/2) // one redraw
	done()
	done() // twice is harmless
	slave.Close()
	b, _ := io.ReadAll(master)
	out := string(b)
	const erase = "\r\033[K"
	if !strings.HasPrefix(out, erase+"restoring c2 0s"+erase+"restoring c2 1s") || !strings.HasSuffix(out, "s"+erase) {
		t.Errorf("terminal output %q: want the line with 0s, then 1s, erased at the end", out)
	}
}

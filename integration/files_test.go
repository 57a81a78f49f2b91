package integration

import (
	"context"
	"os"
	"path/filepath"

	"github.com/tether-run/tether/internal/proc"
	"github.com/tether-run/tether/internal/testutil"
	"github.com/tether-run/tether/runtime"
	"github.com/tether-run/tether/store"
	"golang.org/x/sys/unix"
)

// Names of the files in a container folder, as the README documents them:
// these tests check the documented layout from the outside, so they name
// the files themselves rather than ask package store.
const (
	recordFile  = "container.json"
	shimPidFile = "shim.pid"
	initPidFile = "init.pid"
	exitFile    = "exit.json"
	socketFile  = "shim.sock"
	shimLogFile = "shim.log"
	execDir     = "exec"
)

// readPid reads the pid record dir/name.
func readPid(dir, name string) (proc.Identity, error) {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return proc.Identity{}, err
	}
	return store.ParsePid(name, b)
}

// readExit reads the exit record dir/name.
func readExit(dir, name string) (*store.ExitRecord, error) {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return nil, err
	}
	return store.ParseExit(name, b)
}

// readRecord reads the container record in dir.
func readRecord(dir string) (*store.Record, error) {
	b, err := os.ReadFile(filepath.Join(dir, recordFile))
	if err != nil {
		return nil, err
	}
	return store.ParseRecord(b)
}

// shimStats asks container id's shim for its own resource use.
func shimStats(ctx context.Context, e *testutil.Env, id string) (*runtime.Stats, error) {
	c, err := e.Manager().Load(ctx, id)
	if err != nil {
		return nil, err
	}
	return c.Stats(ctx)
}

// shimState asks container id's shim (through a fresh manager) for its state.
func shimState(ctx context.Context, e *testutil.Env, id string) (*runtime.State, error) {
	c, err := e.NewManager().Load(ctx, id)
	if err != nil {
		return nil, err
	}
	return c.State(ctx)
}

// exitEventsObservable reports whether this host lets an adopting shim
// see an adopted process's true exit status: the kernel's process events
// connector can be subscribed to (root, CONFIG_PROC_EVENTS). Where it can,
// the recovery tests demand the true status, never the unknown one.
func exitEventsObservable() bool {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_CONNECTOR)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	return unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: 1}) == nil
}

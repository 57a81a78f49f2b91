package main

import (
	"context"
	"fmt"
	"os"

	"github.com/sirupsen/logrus"
	"github.com/tether-run/tether/shim"
	"github.com/tether-run/tether/shim/control"
	"github.com/tether-run/tether/store"
)

// checkHandoff is the check mode of an in-place upgrade (shimapi's
// CheckHandoff): the old shim runs the new binary this way before it execs
// it, and goes on serving unless this exits 0. It checks that this binary
// reads the handoff (its version, its processes) and the container's
// record.
func checkHandoff(root, id, path string) error {
	if path == "" {
		return fmt.Errorf("%s needs --handoff PATH", os.Args[1])
	}
	if _, err := shim.ReadHandoff(path, id); err != nil {
		return err
	}
	if _, err := store.At(root, id).ReadRecord(); err != nil {
		return fmt.Errorf("read container record: %w", err)
	}
	return nil
}

// serveUpgraded is the shim after an in-place upgrade: this process was
// the shim of the container a moment ago, running the old binary, and
// execve()d this one. It takes the container and the control socket over
// from the handoff at path, answers the upgrade request, and serves on.
// If it cannot take over, it exits: the container is then an orphan, and
// the next manager adopts it as it would after any shim's death.
func serveUpgraded(root, id string, debugLog bool, path string) error {
	log := setUp(id, debugLog)
	err := takeOver(context.Background(), store.At(root, id), path, log)
	if err != nil {
		log.WithError(err).Error("shim failed after the upgrade")
	}
	return err
}

func takeOver(ctx context.Context, st *store.Folder, path string, log *logrus.Entry) error {
	h, err := shim.ReadHandoff(path, st.ID())
	os.Remove(path)
	if err != nil {
		return err
	}
	var srv *control.Server
	core, err := shim.New(ctx, shim.Options{Store: st, Log: log,
		OnRestore: func(ctx context.Context) error { return srv.Restore(ctx) }})
	if err != nil {
		return err
	}
	defer core.Close()
	srv = control.New(core, st, log)
	answer, err := srv.TakeOver(h)
	if err != nil {
		return err
	}
	pid, err := core.TakeOver(ctx, h)
	if err != nil {
		answer(0, err)
		return err
	}
	go srv.Serve(ctx)
	answer(pid, nil)
	h.CloseRetired()
	<-srv.Done()
	return nil
}

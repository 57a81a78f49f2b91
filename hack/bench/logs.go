package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/tether-run/tether/bundle"
	"github.com/tether-run/tether/store"
	"golang.org/x/sys/unix"
)

// logBytes is what the logs row writes: 256 MiB of zeros.
const logBytes = 256 << 20

// logSamples is the number of runs of each side of the logs row.
const logSamples = 5

// The logs row runs two bundles that differ only in where dd's stdout goes.
// Each init first blocks reading a FIFO in its rootfs ("the gate"), so the
// clock starts when the bench opens the gate, after `runc start` is done:
// both sides are timed from the first byte dd may write to the moment the
// shim reports the exit, which for the stdout side includes draining the
// pipe into output.log (CRI format), and for both includes the exit record.
const (
	ddCmd     = "read x < /gate; exec dd if=/dev/zero bs=1M count=256"
	ddToFile  = ddCmd + " > /tmp/out"
	gateName  = "gate"
	outInRoot = "tmp/out"
)

// logsRow: throughput of a container writing 256 MiB of zeros to stdout,
// through its shim into output.log, against the same container writing
// them to a file of its rootfs (same filesystem as tether's root).
func (b *bench) logsRows(ctx context.Context) []Row {
	const name, label, target = "logs", "logs (256 MiB stdout)", "≥ 0.6x direct"
	toLog, err := b.gateBundle("logs-stdout", ddCmd)
	if err != nil {
		return []Row{failed(name, label, "MB/s", target, err)}
	}
	toFile, err := b.gateBundle("logs-file", ddToFile)
	if err != nil {
		return []Row{failed(name, label, "MB/s", target, err)}
	}
	viaShim := func(i int) (time.Duration, error) { return b.ddOnce(b.id("logs", i), toLog, false) }
	direct := func(i int) (time.Duration, error) { return b.ddOnce(b.id("logf", i), toFile, true) }
	fs := []func(int) (time.Duration, error){viaShim, direct}
	cm, cerr := b.newConmonSet()
	if cerr == nil {
		defer cm.stop()
		fs = append(fs, func(i int) (time.Duration, error) { return cm.ddOnce(b.id("clogs", i), toLog) })
	}
	s, err := interleave(ctx, logSamples, fs...)
	if err != nil {
		return []Row{failed(name, label, "MB/s", target, err)}
	}
	st, sf := s[0], s[1]
	r := Row{Name: name, Label: label, figure: figureOf(rate(st)), Unit: "MB/s", Target: target,
		Note: fmt.Sprintf("%d runs each, interleaved; dd bs=1M from the moment its gate opens to the shim's exit report; baseline: the same container with `> /tmp/out` inside its rootfs (same disk)", len(st))}
	r.withBaseline("stdout to a file", figureOf(rate(sf)))
	r.met(r.Ratio != nil && *r.Ratio >= 0.6)
	if cerr != nil {
		r.Note += "; no conmon row: " + cerr.Error()
		return []Row{r}
	}
	c := versus("logs_conmon", "logs: conmon", "MB/s", rate(s[2]), "stdout to a file", rate(sf), r)
	c.Note = "the same container under conmon (k8s-file log), from the gate opening until its exit file is written; " + c.Note
	return []Row{r, c}
}

// ddOnce runs the gated dd container id of bundle dir under conmon and
// returns the time from its gate opening to conmon's exit file. The log
// must then hold at least the 256 MiB.
func (c *conmonSet) ddOnce(id, dir string) (time.Duration, error) {
	if _, err := c.launch(id, dir); err != nil {
		return 0, err
	}
	defer c.remove(id)
	w, err := watchDirMask(filepath.Dir(c.exitPath(id)), unix.IN_MOVED_TO|unix.IN_CLOSE_WRITE)
	if err != nil {
		return 0, err
	}
	defer unix.Close(w)
	t0, err := releaseGate(filepath.Join(dir, "rootfs", gateName))
	if err != nil {
		return 0, err
	}
	if err := awaitFile(w, id, cmdTimeout); err != nil {
		return 0, err
	}
	d := time.Since(t0)
	if m, ok := c.mons[id]; ok {
		m.WaitExit(30 * time.Second) // conmon has drained the pipe once it is gone
	}
	fi, err := os.Stat(c.logPath(id))
	if err != nil {
		return 0, err
	}
	if fi.Size() < logBytes {
		return 0, fmt.Errorf("conmon %s: log holds %d bytes, want at least %d", id, fi.Size(), logBytes)
	}
	return d, nil
}

// rate turns durations in ms into MB/s (10^6 bytes) of logBytes.
func rate(msecs samples) samples {
	out := make(samples, len(msecs))
	for i, v := range msecs {
		out[i] = float64(logBytes) / 1e6 / (v / 1000)
	}
	return out
}

// gateBundle writes a bundle running script after its gate FIFO opens.
func (b *bench) gateBundle(name, script string) (string, error) {
	dir := filepath.Join(b.dir, name)
	if err := bundle.Write(dir, bundle.Options{Args: []string{"sh", "-c", script}}); err != nil {
		return "", err
	}
	if err := unix.Mkfifo(filepath.Join(dir, "rootfs", gateName), 0o600); err != nil {
		return "", fmt.Errorf("mkfifo: %w", err)
	}
	return dir, nil
}

// ddOnce runs one container of bundle dir and returns the time from its
// gate opening to its exit being reported. The output is checked: 256 MiB
// in the file, or at least that much in output.log.
func (b *bench) ddOnce(id, dir string, toFile bool) (time.Duration, error) {
	if _, err := b.tether("run", "-d", "--bundle", dir, id); err != nil {
		return 0, err
	}
	defer b.tether("delete", "--force", id)
	defer os.Remove(filepath.Join(dir, "rootfs", outInRoot))
	answer, err := waitRequest(store.At(filepath.Dir(b.cdir(id)), id))
	if err != nil {
		return 0, err
	}
	defer answer.Close()
	t0, err := releaseGate(filepath.Join(dir, "rootfs", gateName))
	if err != nil {
		return 0, err
	}
	exit, err := answer.wait()
	d := time.Since(t0)
	if err != nil {
		return 0, err
	}
	if exit.Status != 0 {
		return 0, fmt.Errorf("%s: dd exited %d", id, exit.Status)
	}
	return d, checkOutput(b.cdir(id), dir, toFile)
}

// releaseGate opens the container's gate FIFO (openGate) and writes the
// word that lets the container go on; it returns when it wrote, the start
// of the timed part.
func releaseGate(path string) (time.Time, error) {
	gate, err := openGate(path)
	if err != nil {
		return time.Time{}, err
	}
	t0 := time.Now()
	_, err = unix.Write(gate, []byte("go\n"))
	unix.Close(gate)
	return t0, err
}

// openGate opens the FIFO for writing once the container's shell has it
// open for reading; after 30 s it gives up (and unblocks its own open).
func openGate(path string) (int, error) {
	type res struct {
		fd  int
		err error
	}
	ch := make(chan res, 1)
	go func() {
		fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CLOEXEC, 0)
		ch <- res{fd, err}
	}()
	select {
	case r := <-ch:
		return r.fd, r.err
	case <-time.After(30 * time.Second):
		if fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0); err == nil {
			r := <-ch
			unix.Close(fd)
			if r.err == nil {
				unix.Close(r.fd)
			}
		}
		return -1, fmt.Errorf("the container never opened %s", path)
	}
}

// checkOutput makes sure the bytes went where they should.
func checkOutput(stateDir, bundleDir string, toFile bool) error {
	path := store.At(filepath.Dir(stateDir), filepath.Base(stateDir)).Init().LogPath()
	if toFile {
		path = filepath.Join(bundleDir, "rootfs", outInRoot)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.Size() < logBytes || (toFile && fi.Size() != logBytes) {
		return fmt.Errorf("%s holds %d bytes, want %d", path, fi.Size(), logBytes)
	}
	return nil
}

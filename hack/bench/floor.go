package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// floorSrc is the smallest Go program that does what every Tether process
// must: start, and for a shim, listen on a unix socket and sit idle. Built
// static, as the shim is.
const floorSrc = `package main

import (
	"net"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		return
	}
	l, err := net.Listen("unix", os.Args[1])
	if err != nil {
		os.Exit(1)
	}
	for {
		c, err := l.Accept()
		if err == nil {
			c.Close()
		}
	}
}
`

// floorCopies is how many idle listeners the memory floor reads.
const floorCopies = 20

// floorRows measures what no Go shim can go below on this machine: the
// wall time of exec'ing a static Go binary that exits at once (against
// /bin/true, interleaved), and the PSS and threads of an idle static Go
// listener started with the shim's settings (GOMAXPROCS=1, GOGC=50).
func (b *bench) floorRows(ctx context.Context) []Row {
	dir := filepath.Join(b.dir, "floor")
	bin := filepath.Join(dir, "floor")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return []Row{failed("floor_exec", "floor: static Go exec", "ms", "", err)}
	}
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(floorSrc), 0o600); err != nil {
		return []Row{failed("floor_exec", "floor: static Go exec", "ms", "", err)}
	}
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "main.go")
	build.Dir = dir
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GO111MODULE=off", "GOFLAGS=")
	if out, err := build.CombinedOutput(); err != nil {
		return []Row{failed("floor_exec", "floor: static Go exec", "ms", "", fmt.Errorf("go build: %v: %s", err, out))}
	}
	goExec := func(int) (time.Duration, error) { return run(bin) }
	trueExec := func(int) (time.Duration, error) { return run("/bin/true") }
	s, err := interleave(ctx, 50, goExec, trueExec)
	if err != nil {
		return []Row{failed("floor_exec", "floor: static Go exec", "ms", "", err)}
	}
	ex := Row{Name: "floor_exec", Label: "floor: static Go exec", figure: figureOf(s[0]), Unit: "ms",
		Note: "fork+exec+wait of a static Go program that exits in main, 50 samples, interleaved with /bin/true: the cost of each Go process a command starts"}
	ex.withBaseline("/bin/true", figureOf(s[1]))
	var procs []*exec.Cmd
	defer func() {
		for _, c := range procs {
			c.Process.Kill()
			c.Wait()
		}
	}()
	var pids []int
	for i := 0; i < floorCopies; i++ {
		c := exec.Command(bin, filepath.Join(dir, fmt.Sprintf("s%d", i)))
		c.Env = append(os.Environ(), "GOMAXPROCS=1", "GOGC=50")
		c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := c.Start(); err != nil {
			return []Row{ex, failed("floor_pss", "floor: idle static Go listener PSS", "MiB", "", err)}
		}
		procs = append(procs, c)
		pids = append(pids, c.Process.Pid)
	}
	select {
	case <-time.After(settle):
	case <-ctx.Done():
		return []Row{ex}
	}
	m, err := measurePids(pids)
	if err != nil {
		return []Row{ex, failed("floor_pss", "floor: idle static Go listener PSS", "MiB", "", err)}
	}
	pss := Row{Name: "floor_pss", Label: "floor: idle static Go listener PSS", figure: figureOf(m.pss), Unit: "MiB",
		Note: fmt.Sprintf("%d copies of a static Go program listening on a unix socket, GOMAXPROCS=1 GOGC=50, read %v after start; anonymous %s, RSS %s",
			floorCopies, settle, fmtFigure(figureOf(m.anon), "MiB"), fmtFigure(figureOf(m.rss), "MiB"))}
	th := Row{Name: "floor_threads", Label: "floor: idle static Go listener threads", figure: figureOf(m.threads)}
	return []Row{ex, pss, th}
}

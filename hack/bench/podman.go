package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tether-run/tether/bundle"
)

// podmanMonitors is the population of the podman memory row, per monitor.
const podmanMonitors = 10

// podmanSet is a private podman (storage, run root, containers.conf) used
// with both monitors: each command names its monitor with --conmon.
type podmanSet struct {
	dir, run, rootfs string
	env              []string
	tether, conmon   string
}

// errNoPodman says why the podman rows have no figures.
var errNoPodman = errors.New("podman or conmon is not installed (hack/deps.sh installs them)")

func (b *bench) newPodmanSet() (*podmanSet, error) {
	conmon, err := exec.LookPath("conmon")
	if _, perr := exec.LookPath("podman"); err != nil || perr != nil {
		return nil, errNoPodman
	}
	tc, err := filepath.Abs(filepath.Join(b.bin, "tether-conmon"))
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(tc); err != nil {
		return nil, fmt.Errorf("tether-conmon: %w: run 'make build'", err)
	}
	p := &podmanSet{dir: filepath.Join(b.dir, "podman"), tether: tc, conmon: conmon}
	if p.run, err = os.MkdirTemp("/run", "tbp"); err != nil {
		return nil, err
	}
	p.rootfs = filepath.Join(p.dir, "b", "rootfs")
	if err := bundle.Write(filepath.Join(p.dir, "b"), bundle.Options{}); err != nil {
		return p, err
	}
	conf := fmt.Sprintf("[containers]\nlog_driver = \"k8s-file\"\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\n"+
		"[engine]\nruntime = %q\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\nevents_logfile_path = %q\ntmp_dir = %q\n"+
		"[network]\nnetwork_backend = \"cni\"\ncni_plugin_dirs = [\"/usr/lib/cni\"]\nnetwork_config_dir = %q\n",
		b.rt, filepath.Join(p.run, "events.log"), filepath.Join(p.run, "libpod"), filepath.Join(p.dir, "net"))
	storage := fmt.Sprintf("[storage]\ndriver = \"overlay\"\ngraphroot = %q\nrunroot = %q\n",
		filepath.Join(p.dir, "storage"), filepath.Join(p.run, "storage"))
	if err := os.WriteFile(filepath.Join(p.dir, "containers.conf"), []byte(conf), 0o644); err != nil {
		return p, err
	}
	if err := os.WriteFile(filepath.Join(p.dir, "storage.conf"), []byte(storage), 0o644); err != nil {
		return p, err
	}
	p.env = append(os.Environ(), "CONTAINERS_CONF="+filepath.Join(p.dir, "containers.conf"),
		"CONTAINERS_STORAGE_CONF="+filepath.Join(p.dir, "storage.conf"))
	return p, nil
}

// podman runs one podman command with monitor mon and returns its wall
// time and stdout.
func (p *podmanSet) podman(mon string, args ...string) (time.Duration, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "podman", append([]string{"--conmon", mon}, args...)...)
	cmd.Env = p.env
	var errb strings.Builder
	cmd.Stderr = &errb
	t0 := time.Now()
	out, err := cmd.Output()
	d := time.Since(t0)
	if err != nil {
		return d, "", fmt.Errorf("podman %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return d, strings.TrimSpace(string(out)), nil
}

// cleanup removes every container, ends tether-conmon's watcher by its
// recorded pid (checked to run tether-conmon), undoes podman's mounts and
// removes the run root.
func (p *podmanSet) cleanup() {
	p.podman(p.conmon, "rm", "-af", "-t", "0")
	if b, err := os.ReadFile(filepath.Join(p.run, "libpod", "tether-conmon", "watcher.pid")); err == nil {
		if pid, err := strconv.Atoi(string(b)); err == nil {
			if exe, _ := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe"); exe == p.tether {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	lines := strings.Split(string(mounts), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		f := strings.Fields(lines[i])
		if len(f) > 4 && (strings.HasPrefix(f[4], p.dir+"/") || strings.HasPrefix(f[4], p.run+"/")) {
			syscall.Unmount(f[4], syscall.MNT_DETACH)
		}
	}
	os.RemoveAll(p.run)
	os.RemoveAll(p.dir)
}

// podmanRows: `podman run -d` wall time and the idle monitor's PSS, with
// tether-conmon against Debian's conmon in the same run.
func (b *bench) podmanRows(ctx context.Context) []Row {
	const startName, startLabel, memName, memLabel = "podman_start", "podman run -d (tether-conmon)", "podman_pss", "podman: idle monitor PSS"
	p, err := b.newPodmanSet()
	if p != nil {
		defer p.cleanup()
	}
	if err != nil {
		return []Row{failed(startName, startLabel, "ms", "", err), failed(memName, memLabel, "MiB", "", err)}
	}
	run := func(mon string) func(int) (time.Duration, error) {
		return func(int) (time.Duration, error) {
			d, id, err := p.podman(mon, "run", "-d", "--rootfs", p.rootfs, "sleep", "600")
			if err != nil {
				return 0, err
			}
			_, _, err = p.podman(p.conmon, "rm", "-f", "-t", "0", id)
			return d, err
		}
	}
	st, sc, err := pair(ctx, b.n, run(p.tether), run(p.conmon))
	var rows []Row
	if err != nil {
		rows = append(rows, failed(startName, startLabel, "ms", "", err))
	} else {
		r := Row{Name: startName, Label: startLabel, figure: figureOf(st), Unit: "ms", Target: "≤ 1.10x",
			Note: fmt.Sprintf("wall time of `podman run -d --rootfs BUSYBOX sleep 600`, %d samples each, interleaved, container removed (untimed) after each; baseline %s", len(st), p.conmon)}
		r.withBaseline("conmon", figureOf(sc))
		r.met(r.Ratio != nil && *r.Ratio <= 1.10)
		rows = append(rows, r)
	}
	return append(rows, b.podmanMemRow(ctx, p, memName, memLabel))
}

// podmanMemRow starts podmanMonitors idle containers with each monitor and
// reads their monitors' PSS after the usual settle time.
func (b *bench) podmanMemRow(ctx context.Context, p *podmanSet, name, label string) Row {
	pids := map[string][]int{}
	for _, mon := range []string{p.tether, p.conmon} {
		for i := 0; i < podmanMonitors; i++ {
			if ctx.Err() != nil {
				return failed(name, label, "MiB", "", errStopped)
			}
			_, id, err := p.podman(mon, "run", "-d", "--rootfs", p.rootfs, "sleep", "600")
			if err == nil {
				var pid string
				_, pid, err = p.podman(mon, "inspect", "--format", "{{.State.ConmonPid}}", id)
				n, _ := strconv.Atoi(pid)
				pids[mon] = append(pids[mon], n)
			}
			if err != nil {
				return failed(name, label, "MiB", "", err)
			}
		}
	}
	time.Sleep(settle)
	tm, err := measurePids(pids[p.tether])
	if err != nil {
		return failed(name, label, "MiB", "", err)
	}
	cm, err := measurePids(pids[p.conmon])
	if err != nil {
		return failed(name, label, "MiB", "", err)
	}
	note := fmt.Sprintf("%d idle monitors each, read %v after the last start (smaps_rollup)", podmanMonitors, settle)
	if b, err := os.ReadFile(filepath.Join(p.run, "libpod", "tether-conmon", "watcher.pid")); err == nil {
		if pid, err := strconv.Atoi(string(b)); err == nil {
			if m, err := readMem(pid); err == nil {
				note += fmt.Sprintf("; plus tether-conmon's one watcher for all of them: PSS %.2f MiB", m.pss/1024)
			}
		}
	}
	r := Row{Name: name, Label: label, figure: figureOf(tm.pss), Unit: "MiB", Note: note}
	r.withBaseline("conmon", figureOf(cm.pss))
	return r
}

package integration

import (
	"bufio"
	"encoding/json"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tether-run/tether/internal/testutil"
)

// cliStats is the JSON line of 'tether stats --format json' (README).
type cliStats struct {
	ID         string    `json:"id"`
	Read       time.Time `json:"read"`
	CPUPercent float64   `json:"cpu_percent"`
	Memory     struct {
		Usage     uint64  `json:"usage"`
		Limit     uint64  `json:"limit"`
		Unlimited bool    `json:"unlimited"`
		Percent   float64 `json:"percent"`
	} `json:"memory"`
	Pids struct {
		Current uint64  `json:"current"`
		Limit   *uint64 `json:"limit"`
	} `json:"pids"`
	BlockIO struct {
		ReadBytes  uint64 `json:"read_bytes"`
		WriteBytes uint64 `json:"write_bytes"`
	} `json:"block_io"`
	Cgroup int `json:"cgroup_version"`
}

func statsOnce(t *testing.T, e *testutil.Env, id string) cliStats {
	t.Helper()
	out := e.MustTether("stats", "--no-stream", "--format", "json", id)
	var s cliStats
	if err := json.Unmarshal([]byte(out), &s); err != nil || s.ID != id {
		t.Fatalf("stats --format json: %v: %q", err, out)
	}
	return s
}

// TestStatsUpdateTopCLI: tether stats (JSON and table, one sample and a
// stream ended by ^C), update (visible in stats at once; a bad value is
// one line, exit 2, and changes nothing) and top, on runc and crun.
func TestStatsUpdateTopCLI(t *testing.T) {
	testutil.EachRuntime(t, func(t *testing.T, e *testutil.Env) {
		id := "stats-" + e.Runtime
		// a busy loop (CPU), a file written with sync (block IO where the
		// root's disk is a block device), a sleeper (top)
		b := e.Bundle("sh", "-c", "sleep 1001 & dd if=/dev/zero of=/tmp/f bs=64k count=16 conv=fsync 2>/dev/null; while :; do :; done")
		e.MustTether("run", "-d", "--bundle", b, id)

		var s cliStats
		testutil.Eventually(t, 30*time.Second, "dd to end (sh and sleep left)", func() bool {
			s = statsOnce(t, e, id)
			return s.Pids.Current == 2
		})
		s = statsOnce(t, e, id) // a second wholly after dd
		if s.CPUPercent < 5 || s.CPUPercent > 250 || s.Memory.Usage == 0 || !s.Memory.Unlimited || s.Memory.Limit == 0 ||
			s.Pids.Current != 2 || s.Pids.Limit != nil || (s.Cgroup != 1 && s.Cgroup != 2) || s.Read.IsZero() {
			t.Errorf("stats of a busy container without limits: %+v", s)
		}

		// a bad value: one line, exit 2, nothing changed
		for _, args := range [][]string{
			{"--memory", "64q"}, {"--cpus", "0"}, {"--cpus", "1000"}, {"--pids-limit", "lots"}, {"--memory", "64m", "--memory-swap", "32m"}, {},
		} {
			r := e.Tether(append(append([]string{"update"}, args...), id)...)
			if r.Code != 2 || strings.Count(strings.TrimSpace(r.Stderr), "\n") != 0 || !strings.Contains(r.Stderr, "tether update: ") {
				t.Errorf("update %v: exit %d, stderr %q: want exit 2 and one line", args, r.Code, r.Stderr)
			}
		}
		if s := statsOnce(t, e, id); !s.Memory.Unlimited || s.Pids.Limit != nil {
			t.Errorf("limits after refused updates: %+v", s)
		}

		e.MustTether("update", "--memory", "64m", "--cpus", "0.5", "--pids-limit", "50", id)
		s = statsOnce(t, e, id)
		if s.Memory.Limit != 64<<20 || s.Memory.Unlimited || s.Pids.Limit == nil || *s.Pids.Limit != 50 || s.CPUPercent > 75 {
			t.Errorf("stats after update --memory 64m --cpus 0.5 --pids-limit 50: %+v (pids limit %v)", s, s.Pids.Limit)
		}
		table := e.MustTether("stats", "--no-stream", id)
		if lines := strings.Split(strings.TrimSpace(table), "\n"); len(lines) != 2 || !strings.HasPrefix(lines[0], "ID ") ||
			!strings.Contains(lines[1], "/ 64MiB") || !strings.Contains(lines[1], "2 / 50") {
			t.Errorf("stats table:\n%s", table)
		}

		// a stream: a line per second until ^C, then exit 0
		cmd := e.Command("stats", "--format", "json", id)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		var reads []time.Time
		for len(reads) < 3 && sc.Scan() {
			var s cliStats
			if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
				t.Errorf("stream line %q: %v", sc.Text(), err)
			}
			reads = append(reads, s.Read)
		}
		cmd.Process.Signal(syscall.SIGINT)
		if err := cmd.Wait(); err != nil || len(reads) != 3 || !reads[2].After(reads[1]) || !reads[1].After(reads[0]) {
			t.Errorf("stats stream: samples at %v, end after ^C: %v", reads, err)
		}

		top := e.MustTether("top", id)
		if !strings.HasPrefix(top, "PID") || !strings.Contains(top, " root ") || !strings.Contains(top, "sleep 1001") {
			t.Errorf("top:\n%s", top)
		}
		if r := e.Tether("stats", "--no-stream", "nosuch"); r.Code != 1 || !strings.Contains(r.Stderr, "nosuch") || r.Stdout != "" {
			t.Errorf("stats of a missing container: exit %d, %q, %q", r.Code, r.Stdout, r.Stderr)
		}
		e.MustTether("delete", "--force", id)
	})
}

package shimapi

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/tether-run/tether/internal/errdefs"
)

// TestGoldenFrames decodes the requests, replies, ready messages and
// stream frames of every shipped protocol version, kept under
// testdata/vN, forever. A new version adds its folder; none is ever
// removed or edited.
func TestGoldenFrames(t *testing.T) {
	for _, v := range []string{"v1"} {
		t.Run(v, func(t *testing.T) {
			dir := filepath.Join("testdata", v)
			want := map[string]Message{
				"req-state.json":  StateReq{},
				"req-kill.json":   KillReq{Exec: "job", Signal: 9},
				"req-wait.json":   WaitReq{Exec: "e1"},
				"req-delete.json": DeleteReq{Force: true},
				"req-resize.json": ResizeReq{Width: 120, Height: 40},
				// added within version 1 (in-place upgrade)
				"req-upgrade.json": UpgradeReq{Binary: "/usr/local/bin/tether-shim"},
				// added to version 1 later: older shims answer "unknown
				// operation" (CodeInvalid), see OpMetrics
				"req-metrics.json": MetricsReq{},
				"req-pids.json":    PidsReq{},
			}
			for name, m := range want {
				got := goldenRequest(t, filepath.Join(dir, name))
				if !reflect.DeepEqual(got, m) {
					t.Errorf("%s: %#v, want %#v", name, got, m)
				}
			}
			ex, ok := goldenRequest(t, filepath.Join(dir, "req-exec.json")).(ExecReq)
			if !ok || ex.ID != "e1" || len(ex.Process.Args) != 3 || !ex.Terminal || !ex.Stdin || !ex.Attach {
				t.Errorf("exec request: %#v", ex)
			}
			var st Response
			goldenJSON(t, filepath.Join(dir, "resp-state.json"), &st)
			if st.Err(1) != nil || st.State == nil || st.State.ExitStatus == nil || *st.State.ExitStatus != 137 ||
				st.State.AdoptedAt == nil || len(st.State.Execs) != 1 || st.State.Execs[0].ID != "job" {
				t.Errorf("state reply: %+v", st.State)
			}
			var w Response
			goldenJSON(t, filepath.Join(dir, "resp-wait.json"), &w)
			if w.Err(1) != nil || w.Exit == nil || w.Exit.Status != 137 || w.Exit.Reason == "" {
				t.Errorf("wait reply: %+v", w.Exit)
			}
			var u Response
			goldenJSON(t, filepath.Join(dir, "resp-upgrade.json"), &u)
			if u.Err(1) != nil || u.Upgrade == nil || u.Upgrade.Pid != 4242 || u.Upgrade.To.Version != "v0.3-13-gdef5678" ||
				u.Upgrade.From.Binary != "/usr/local/bin/tether-shim (deleted)" {
				t.Errorf("upgrade reply: %+v", u.Upgrade)
			}
			goldenV1Additions(t, dir)
			var e Response
			goldenJSON(t, filepath.Join(dir, "resp-error.json"), &e)
			if err := e.Err(1); !errors.Is(err, errdefs.ErrRunning) {
				t.Errorf("error reply: %v", err)
			}
			var ok1, bad Ready
			goldenJSON(t, filepath.Join(dir, "ready-ok.json"), &ok1)
			goldenJSON(t, filepath.Join(dir, "ready-error.json"), &bad)
			if ok1.Pid != 4300 || ok1.Err() != nil || !errors.Is(bad.Err(), errdefs.ErrCommandNotFound) {
				t.Errorf("ready: %+v %+v", ok1, bad)
			}
			goldenFrames(t, filepath.Join(dir, "frames-out.bin"), []byte{FrameStdout, FrameStderr, FrameExit})
			goldenFrames(t, filepath.Join(dir, "frames-in.bin"), []byte{FrameStdin, FrameResize, FrameCloseStdin})
		})
	}
}

// goldenV1Additions decodes what was added to version 1 after 3911370 as
// optional fields, which older readers ignore, and new operations: the
// update request, the metrics reply, and the OOM fields of exits and
// states.
func goldenV1Additions(t *testing.T, dir string) {
	t.Helper()
	up, ok := goldenRequest(t, filepath.Join(dir, "req-update.json")).(UpdateReq)
	is := func(p *int64, v int64) bool { return p != nil && *p == v }
	if r := up.Resources; !ok || r.Memory == nil || !is(r.Memory.Limit, 64<<20) || !is(r.Memory.Swap, 128<<20) ||
		r.CPU == nil || !is(r.CPU.Quota, 50000) || r.CPU.Period == nil || *r.CPU.Period != 100000 ||
		r.Pids == nil || !is(r.Pids.Limit, 50) {
		t.Errorf("update request: %#v", up)
	}
	var m Response
	goldenJSON(t, filepath.Join(dir, "resp-metrics.json"), &m)
	if s := m.Metrics; m.Err(1) != nil || s == nil || s.Time.IsZero() || s.CPU == nil || s.CPU.UsageNanos != 1500000000 ||
		s.CPU.QuotaMicros != 50000 || s.Memory == nil || s.Memory.Usage != 8<<20 || s.Memory.Limit != 64<<20 ||
		s.Memory.OOMKills != 1 || s.Pids == nil || s.Pids.Current != 3 || s.Pids.Limit != 50 ||
		s.IO == nil || len(s.IO.Devices) != 1 || s.IO.Devices[0].WriteBytes != 8192 {
		t.Errorf("metrics reply: %+v", m.Metrics)
	}
	var p Response
	goldenJSON(t, filepath.Join(dir, "resp-pids.json"), &p)
	if !reflect.DeepEqual(p.Pids, []int{4300, 4301, 4400}) {
		t.Errorf("pids reply: %v", p.Pids)
	}
	var w Response
	goldenJSON(t, filepath.Join(dir, "resp-wait-oom.json"), &w)
	if w.Exit == nil || w.Exit.Status != 137 || !w.Exit.OOMKilled || w.Exit.OOMKills != 2 {
		t.Errorf("wait reply with an OOM kill: %+v", w.Exit)
	}
	var st Response
	goldenJSON(t, filepath.Join(dir, "resp-state-oom.json"), &st)
	if st.State == nil || !st.State.OOMKilled || st.State.OOMKills != 2 || st.State.ExitStatus == nil || *st.State.ExitStatus != 137 {
		t.Errorf("state reply with an OOM kill: %+v", st.State)
	}
	var rm Ready
	goldenJSON(t, filepath.Join(dir, "ready-autoremove.json"), &rm)
	if rm.Pid != 4300 || !rm.AutoRemove || rm.Err() != nil {
		t.Errorf("ready of an auto-remove shim: %+v", rm)
	}
}

func goldenRequest(t *testing.T, path string) Message {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r Request
	if err := ReadMessage(bufio.NewReader(bytes.NewReader(b)), &r); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	m, err := r.Message()
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return m
}

func goldenJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// goldenFrames reads a file of frames and checks their kinds, that an
// exit frame decodes, and that a resize frame parses.
func goldenFrames(t *testing.T, path string, kinds []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r := bytes.NewReader(b)
	for i, want := range kinds {
		kind, data, err := ReadFrame(r, nil)
		if err != nil || kind != want {
			t.Fatalf("%s: frame %d: kind %d, %v; want %d", path, i, kind, err, want)
		}
		switch kind {
		case FrameExit:
			var e Exit
			if err := json.Unmarshal(data, &e); err != nil || e.Status != 7 {
				t.Errorf("%s: exit frame %q: %v", path, data, err)
			}
		case FrameResize:
			if w, h, ok := ParseResize(data); !ok || w != 120 || h != 40 {
				t.Errorf("%s: resize %d x %d", path, w, h)
			}
		}
	}
	if _, _, err := ReadFrame(r, nil); err != io.EOF {
		t.Errorf("%s: trailing bytes: %v", path, err)
	}
}

// TestDowngrade: a shim of an older version refuses a newer request with
// its own version in the reply; the client retries in that version. A
// newer shim answers an older request in the request's version.
func TestDowngrade(t *testing.T) {
	old := &Response{Version: 1, Error: "unsupported schema version (invalid argument): protocol version 2, this shim speaks 1", Code: CodeInvalid}
	if v, ok := old.Downgrade(2); !ok || v != 1 {
		t.Errorf("downgrade from 2 after %+v: %d, %v", old, v, ok)
	}
	for _, r := range []*Response{
		{Version: 1}, // success
		{Version: 1, Error: "x", Code: CodeRunning}, // another refusal
		{Version: 2, Error: "x", Code: CodeInvalid}, // same version
		{Version: 0, Error: "x", Code: CodeInvalid}, // never shipped
	} {
		if _, ok := r.Downgrade(2); ok {
			t.Errorf("downgrade after %+v", r)
		}
	}
	req := NewRequest(MinVersion, StateReq{})
	if _, err := req.Message(); err != nil {
		t.Errorf("oldest version refused: %v", err)
	}
	req.Version = Version + 1
	if _, err := req.Message(); !errors.Is(err, errdefs.ErrVersion) || !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("newer version: %v", err)
	}
}

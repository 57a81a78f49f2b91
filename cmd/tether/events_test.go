package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestEventsFormat: events prints a journal through a Go template, one
// line per event, as docker does; table is refused in one line (exit 2).
func TestEventsFormat(t *testing.T) {
	root := t.TempDir()
	journal := `{"version":1,"time":"2026-12-05T16:00:00Z","type":"exited","id":"c1","pid":7,"exit_status":3,"shim_pid":9}` + "\n" +
		`{"version":1,"time":"2026-12-05T16:00:01Z","type":"deleted","id":"c1","shim_pid":9}` + "\n"
	if err := os.WriteFile(filepath.Join(root, "events.log"), []byte(journal), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runCLI(t, "--root", root, "events", "--since", "2026-12-05T15:00:00Z", "--until", "0s",
		"--format", "{{.Type}} {{.ID}} {{if .ExitStatus}}{{.ExitStatus}}{{end}}")
	if code != 0 || out != "exited c1 3\ndeleted c1 \n" {
		t.Errorf("events --format template: exit %d, %q (stderr %q)", code, out, errOut)
	}
	out, errOut, code = runCLI(t, "--root", root, "events", "--format", "table")
	if code != 2 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "Go template") {
		t.Errorf("events --format table: exit %d, %q, %q; want 2 and one line", code, out, errOut)
	}
}

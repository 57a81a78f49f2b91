package bundle

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestRunWrittenBundle_Isolated runs a written bundle with each real OCI
// runtime found on the host, and checks its output and exit status.
func TestRunWrittenBundle_Isolated(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: runc and crun create namespaces and cgroups")
	}
	requireBusybox(t)
	for _, runtime := range []string{"runc", "crun"} {
		t.Run(runtime, func(t *testing.T) {
			bin, err := exec.LookPath(runtime)
			if err != nil {
				t.Skipf("%s is not installed: %v", runtime, err)
			}
			out, code := runBundle(t, bin, []string{"sh", "-c", "echo ok; exit 3"})
			if code != 3 || out != "ok\n" {
				t.Errorf("%s run: exit %d, stdout %q; want exit 3, stdout %q", runtime, code, out, "ok\n")
			}
		})
	}
}

// runBundle writes a bundle running args, runs it with `RUNTIME --root
// TMP run`, and returns its stdout and exit code. The container, its state
// root and the bundle are removed when the test ends, even if it fails.
func runBundle(t *testing.T, runtime string, args []string) (string, int) {
	t.Helper()
	stateRoot := mkdirTemp(t)
	dir := mkdirTemp(t)
	id := fmt.Sprintf("bd%d-%d", os.Getpid(), time.Now().UnixNano()%1e6)
	t.Cleanup(func() { // runs before mkdirTemp's removals
		del := exec.Command(runtime, "--root", stateRoot, "delete", "--force", id)
		del.Run() // fails harmlessly when run already removed the container
	})
	if err := Write(dir, Options{Args: args}); err != nil {
		t.Fatalf("Write: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, runtime, "--root", stateRoot, "run", "--bundle", dir, id)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("%s run: %v", runtime, err)
	}
	if stderr.Len() > 0 {
		t.Logf("%s stderr: %s", runtime, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), cmd.ProcessState.ExitCode()
}

// mkdirTemp makes a short temporary folder, removed when the test ends:
// runtimes put sockets in their state root, and socket paths are limited
// to about 108 bytes, which t.TempDir's long names can exceed.
func mkdirTemp(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "bd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

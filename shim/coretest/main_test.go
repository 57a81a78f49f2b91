package coretest

import (
	"fmt"
	"os"
	"testing"

	"github.com/tether-run/tether/shim"
)

// TestMain serves the shim's oom-exec action: the core runs the OCI
// runtime through /proc/self/exe, which here is this test binary, when it
// could lower its own OOM score (with CAP_SYS_RESOURCE, as in the cgroup
// v2 VM) and so must raise the runtime's again.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == shim.OOMExecAction {
		err := shim.OOMExec(os.Args[2:])
		fmt.Fprintln(os.Stderr, err)
		os.Exit(127)
	}
	os.Exit(m.Run())
}

// Command tether-conmon is podman's container monitor (a drop-in for
// conmon) on Tether's shim core; see package conmon and the README,
// "Under podman".
package main

import (
	"fmt"
	"os"

	"github.com/tether-run/tether/conmon"
	"github.com/tether-run/tether/internal/gotune"
	"github.com/tether-run/tether/shim"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == shim.TraceExitAction { // an adopting core's exit tracer
		os.Exit(shim.TraceExitMain(os.Args[2:]))
	}
	if len(os.Args) > 1 && os.Args[1] == shim.OOMExecAction {
		// The core runs the OCI runtime through this when the monitor
		// lowered its own OOM score (a host with CAP_SYS_RESOURCE); see
		// shim.OOMExecAction.
		err := shim.OOMExec(os.Args[2:])
		fmt.Fprintln(os.Stderr, "tether-conmon:", err)
		os.Exit(127)
	}
	// A monitor lives as long as its container and idles: tuned as
	// tether-shim (set here, not in the environment, so the OCI runtime
	// and the exit command keep Go's defaults).
	gotune.Apply()
	os.Exit(conmon.Main(os.Args[1:], os.Stdout, os.Stderr))
}

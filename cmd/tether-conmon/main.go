// Command tether-conmon is podman's container monitor (a drop-in for
// conmon) on Tether's shim core; see package conmon and the README,
// "Under podman".
package main

import (
	"os"
	"runtime"
	"runtime/debug"

	"github.com/tether-run/tether/conmon"
)

func main() {
	// A monitor lives as long as its container and idles: one P and a
	// smaller heap goal, as tether-shim (set here, not in the environment,
	// so the OCI runtime and the exit command keep Go's defaults).
	runtime.GOMAXPROCS(1)
	debug.SetGCPercent(50)
	os.Exit(conmon.Main(os.Args[1:], os.Stdout, os.Stderr))
}

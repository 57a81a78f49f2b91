// Command tether-conmon is podman's container monitor (a drop-in for
// conmon) on Tether's shim core; see package conmon and the README,
// "Under podman".
package main

import (
	"os"

	"github.com/tether-run/tether/conmon"
)

func main() {
	os.Exit(conmon.Main(os.Args[1:], os.Stdout, os.Stderr))
}

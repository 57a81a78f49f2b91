// Command containerd-shim-tether-v1 is Tether's shim for containerd's
// runtime v2 (runtime type io.containerd.tether.v1). containerd runs it as
//
//	containerd-shim-tether-v1 -namespace NS -address ADDR -publish-binary BIN -id ID [-bundle DIR] [-debug] start|delete
//
// with the bundle as its working folder and TTRPC_ADDRESS set.
//
//   - start makes the task's socket (mode 0600, under containerd's
//     socket folder), starts the long-lived shim ("serve") in its own
//     session, writes the bundle's address file and prints the address.
//   - delete cleans up after a shim containerd can no longer reach and
//     prints a protobuf DeleteResponse with the task's true exit status.
//   - serve answers containerd.task.v2.Task over ttrpc with Tether's shim
//     core running in the same process, until the task is deleted and
//     containerd asks it to shut down.
//
// Signals: SIGTERM, SIGINT, SIGHUP and SIGPIPE are ignored by the serving
// shim, like tether-shim: only containerd's Shutdown ends it.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/tether-run/tether/internal/ids"
	"github.com/tether-run/tether/shim"
)

// flags are the flags containerd passes before the action.
type flags struct {
	namespace, address, publishBinary, id, bundle, socketDir string
	debug                                                    bool
}

func parseFlags(args []string) (*flags, []string, error) {
	f := &flags{}
	fs := flag.NewFlagSet("containerd-shim-tether-v1", flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	fs.StringVar(&f.namespace, "namespace", "", "containerd namespace of the task")
	fs.StringVar(&f.address, "address", "", "containerd's gRPC socket")
	fs.StringVar(&f.publishBinary, "publish-binary", "", "containerd binary (events go to TTRPC_ADDRESS instead)")
	fs.StringVar(&f.id, "id", "", "task ID")
	fs.StringVar(&f.bundle, "bundle", "", "bundle folder (default: the working folder)")
	fs.StringVar(&f.socketDir, "socket-dir", "", "folder of the task socket (default /run/containerd/s)")
	fs.BoolVar(&f.debug, "debug", false, "log at debug level")
	version := fs.Bool("v", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return nil, nil, err
	}
	if *version {
		fmt.Println("containerd-shim-tether-v1", shimVersion)
		os.Exit(0)
	}
	return f, fs.Args(), nil
}

// shimVersion is printed by -v.
const shimVersion = "v1"

func main() {
	if len(os.Args) > 1 && os.Args[1] == shim.TraceExitAction { // an adopting core's exit tracer
		os.Exit(shim.TraceExitMain(os.Args[2:]))
	}
	if len(os.Args) > 1 && os.Args[1] == shim.OOMExecAction {
		// The core runs the OCI runtime through this; see shim.OOMExecAction.
		err := shim.OOMExec(os.Args[2:])
		fmt.Fprintln(os.Stderr, "containerd-shim-tether-v1:", err)
		os.Exit(127)
	}
	f, rest, err := parseFlags(os.Args[1:])
	if err != nil {
		os.Exit(2)
	}
	if len(rest) != 1 {
		fmt.Fprintln(os.Stderr, "containerd-shim-tether-v1: usage: containerd-shim-tether-v1 -namespace NS -address ADDR -id ID start|delete (containerd runs it; see the README)")
		os.Exit(2)
	}
	if err := f.check(); err != nil {
		fmt.Fprintln(os.Stderr, "containerd-shim-tether-v1:", err)
		os.Exit(2)
	}
	switch rest[0] {
	case "start":
		err = start(f)
	case "delete":
		err = deleteTask(f)
	case actionServe:
		err = serve(f)
	default:
		err = fmt.Errorf("unknown action %q: containerd calls start or delete", rest[0])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "containerd-shim-tether-v1:", err)
		os.Exit(1)
	}
}

// actionServe is the long-lived shim that start spawns.
const actionServe = "serve"

func (f *flags) check() error {
	if f.namespace == "" {
		f.namespace = os.Getenv("NAMESPACE")
	}
	if f.namespace == "" || f.id == "" {
		return fmt.Errorf("-namespace and -id are required")
	}
	if err := ids.ValidID(f.id); err != nil {
		return fmt.Errorf("task id %q: %w: Tether needs [A-Za-z0-9][A-Za-z0-9_.-]{0,63}", f.id, err)
	}
	if f.bundle == "" {
		wd, err := os.Getwd()
		if err != nil {
			return err
		}
		f.bundle = wd
	}
	return nil
}

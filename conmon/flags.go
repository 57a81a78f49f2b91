package conmon

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrUsage marks a command line that conmon would refuse too.
var ErrUsage = errors.New("option parsing failed")

// Options are conmon's command-line options, as podman 4.3 and 5.x pass
// them (conmon's src/cli.c is the reference). Fields left at their zero
// value mean the option was not given, except where noted.
type Options struct {
	Terminal, Stdin, LeaveStdinOpen      bool
	CID, CUUID, Name                     string
	Runtime                              string   // -r: path of the OCI runtime
	RuntimeArgs                          []string // --runtime-arg: global runtime arguments, in order
	RuntimeOpts                          []string // --runtime-opt/--restore-arg: subcommand arguments
	Restore                              string
	ExecAttach, Exec, APIVersion         bool
	NoNewKeyring, NoPivot, SystemdCgroup bool
	ReplaceListenPid                     bool
	Bundle, PersistDir                   string
	ContainerPidFile, ConmonPidFile      string
	ExecProcessSpec                      string
	ExitDir, ExitCommand                 string
	ExitCommandArgs                      []string
	ExitDelay                            int
	LogPaths                             []string // -l DRIVER:PATH or PATH, repeated
	LogSizeMax                           int64    // -1 when not given
	LogGlobalSizeMax                     int64    // -1 when not given
	LogTag, LogLevel                     string
	LogLabels                            []string
	LogRotate                            bool
	LogMaxFiles                          int
	LogAllowlistDirs                     []string
	NoContainerPartialMessage, NoSyncLog bool
	Sync, FullAttach, Syslog, Version    bool
	SocketDirPath                        string // "/var/run/crio" when not given
	SdNotifySocket                       string
	Timeout                              int
	// Rest holds the arguments that are no option, in order: podman 4.3
	// passes "--api-version 1", and --api-version takes no value, so "1"
	// lands here; conmon ignores these too.
	Rest []string

	// Role is Tether's own: "" for a monitor started by podman, RoleDaemon
	// for the detached copy it starts, RoleAdopt and RoleWatch for the
	// adoption machinery (see watch.go).
	Role string
	// AdoptStatus, for an adopting monitor, is the init's exit status the
	// watcher observed when the init ended before any adopter ran.
	AdoptStatus string
	// Encoded, for the detached monitor, is every other option as one
	// JSON argument: its command line must name only one --root and --id
	// (those of serveArgs), and podman's own arguments carry "--root".
	Encoded string `json:"-"`
}

// The roles of a tether-conmon process other than the one podman starts.
const (
	RoleDaemon = "daemon"
	RoleAdopt  = "adopt"
	RoleWatch  = "watch"
)

// DefaultSocketDir is conmon's default --socket-dir-path.
const DefaultSocketDir = "/var/run/crio"

// argKind is how an option takes its value, in glib's terms.
type argKind int

const (
	argNone   argKind = iota // G_OPTION_ARG_NONE: a flag
	argString                // G_OPTION_ARG_STRING: last one wins
	argStrv                  // G_OPTION_ARG_STRING_ARRAY: repeated, kept in order
	argInt                   // G_OPTION_ARG_INT
	argInt64                 // G_OPTION_ARG_INT64
)

// option is one row of the option table.
type option struct {
	long  string
	short byte
	kind  argKind
	ptr   any
}

// table lists every option conmon 2.1 knows, pointing into o.
func (o *Options) table() []option {
	return []option{
		{"terminal", 't', argNone, &o.Terminal},
		{"stdin", 'i', argNone, &o.Stdin},
		{"leave-stdin-open", 0, argNone, &o.LeaveStdinOpen},
		{"cid", 'c', argString, &o.CID},
		{"cuuid", 'u', argString, &o.CUUID},
		{"name", 'n', argString, &o.Name},
		{"runtime", 'r', argString, &o.Runtime},
		{"restore", 0, argString, &o.Restore},
		{"restore-arg", 0, argStrv, &o.RuntimeOpts},
		{"runtime-opt", 0, argStrv, &o.RuntimeOpts},
		{"runtime-arg", 0, argStrv, &o.RuntimeArgs},
		{"exec-attach", 0, argNone, &o.ExecAttach},
		{"no-new-keyring", 0, argNone, &o.NoNewKeyring},
		{"no-pivot", 0, argNone, &o.NoPivot},
		{"replace-listen-pid", 0, argNone, &o.ReplaceListenPid},
		{"bundle", 'b', argString, &o.Bundle},
		{"persist-dir", '0', argString, &o.PersistDir},
		{"pidfile", 0, argString, &o.ContainerPidFile},
		{"container-pidfile", 'p', argString, &o.ContainerPidFile},
		{"conmon-pidfile", 'P', argString, &o.ConmonPidFile},
		{"systemd-cgroup", 's', argNone, &o.SystemdCgroup},
		{"exec", 'e', argNone, &o.Exec},
		{"api-version", 0, argNone, &o.APIVersion},
		{"exec-process-spec", 0, argString, &o.ExecProcessSpec},
		{"exit-dir", 0, argString, &o.ExitDir},
		{"exit-command", 0, argString, &o.ExitCommand},
		{"exit-command-arg", 0, argStrv, &o.ExitCommandArgs},
		{"exit-delay", 0, argInt, &o.ExitDelay},
		{"log-path", 'l', argStrv, &o.LogPaths},
		{"log-size-max", 0, argInt64, &o.LogSizeMax},
		{"log-global-size-max", 0, argInt64, &o.LogGlobalSizeMax},
		{"log-tag", 0, argString, &o.LogTag},
		{"log-label", 0, argStrv, &o.LogLabels},
		{"log-level", 0, argString, &o.LogLevel},
		{"log-rotate", 0, argNone, &o.LogRotate},
		{"log-max-files", 0, argInt, &o.LogMaxFiles},
		{"log-allowlist-dir", 0, argStrv, &o.LogAllowlistDirs},
		{"no-container-partial-message", 0, argNone, &o.NoContainerPartialMessage},
		{"no-sync-log", 0, argNone, &o.NoSyncLog},
		{"sync", 0, argNone, &o.Sync},
		{"full-attach", 0, argNone, &o.FullAttach},
		{"syslog", 0, argNone, &o.Syslog},
		{"version", 0, argNone, &o.Version},
		{"socket-dir-path", 0, argString, &o.SocketDirPath},
		{"sdnotify-socket", 0, argString, &o.SdNotifySocket},
		{"timeout", 'T', argInt, &o.Timeout},
		// Tether's own, never passed by podman.
		{"tether-role", 0, argString, &o.Role},
		{"tether-status", 0, argString, &o.AdoptStatus},
		{"tether-options", 0, argString, &o.Encoded},
	}
}

// Parse reads a conmon command line (without the program name) the way
// glib's GOptionContext does: "--name value", "--name=value", "-x value",
// grouped short flags ("-ti"), "--" ending the options. A value is the
// next argument whatever it looks like (podman passes
// "--runtime-arg --log-format=json"), and empty values are kept. Errors
// wrap ErrUsage and name the offending argument.
func Parse(args []string) (*Options, error) {
	o := &Options{LogSizeMax: -1, LogGlobalSizeMax: -1, SocketDirPath: DefaultSocketDir}
	tab := o.table()
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			o.Rest = append(o.Rest, args[i+1:]...)
			return o, nil
		case strings.HasPrefix(a, "--"):
			n, err := o.parseLong(tab, args, i)
			if err != nil {
				return nil, err
			}
			i = n
		case len(a) > 1 && a[0] == '-':
			n, err := o.parseShort(tab, args, i)
			if err != nil {
				return nil, err
			}
			i = n
		default:
			o.Rest = append(o.Rest, a)
		}
	}
	return o, nil
}

// parseLong handles args[i], a long option; it returns the index of the
// last argument it used.
func (o *Options) parseLong(tab []option, args []string, i int) (int, error) {
	name, val, hasVal := strings.Cut(args[i][2:], "=")
	opt := findLong(tab, name)
	if opt == nil {
		return 0, fmt.Errorf("%w: Unknown option --%s", ErrUsage, name)
	}
	if opt.kind == argNone {
		if hasVal {
			return 0, fmt.Errorf("%w: Option --%s does not take a value", ErrUsage, name)
		}
		*opt.ptr.(*bool) = true
		return i, nil
	}
	if !hasVal {
		if i+1 >= len(args) {
			return 0, fmt.Errorf("%w: Missing argument for --%s", ErrUsage, name)
		}
		i++
		val = args[i]
	}
	return i, opt.set("--"+name, val)
}

// parseShort handles args[i], one or more grouped short options.
func (o *Options) parseShort(tab []option, args []string, i int) (int, error) {
	group := args[i][1:]
	for k := 0; k < len(group); k++ {
		opt := findShort(tab, group[k])
		if opt == nil {
			return 0, fmt.Errorf("%w: Unknown option -%c", ErrUsage, group[k])
		}
		if opt.kind == argNone {
			*opt.ptr.(*bool) = true
			continue
		}
		name := "-" + string(group[k])
		if k+1 < len(group) {
			// "-cID": the rest of the group is the value.
			return i, opt.set(name, group[k+1:])
		}
		if i+1 >= len(args) {
			return 0, fmt.Errorf("%w: Missing argument for %s", ErrUsage, name)
		}
		return i + 1, opt.set(name, args[i+1])
	}
	return i, nil
}

func findLong(tab []option, name string) *option {
	for k := range tab {
		if tab[k].long == name {
			return &tab[k]
		}
	}
	return nil
}

func findShort(tab []option, c byte) *option {
	for k := range tab {
		if tab[k].short == c {
			return &tab[k]
		}
	}
	return nil
}

// set stores val in the option's field.
func (opt *option) set(name, val string) error {
	switch p := opt.ptr.(type) {
	case *string:
		*p = val
	case *[]string:
		*p = append(*p, val)
	case *int:
		n, err := strconv.ParseInt(strings.TrimSpace(val), 0, 32)
		if err != nil {
			return fmt.Errorf("%w: Cannot parse integer value %q for %s", ErrUsage, val, name)
		}
		*p = int(n)
	case *int64:
		n, err := strconv.ParseInt(strings.TrimSpace(val), 0, 64)
		if err != nil {
			return fmt.Errorf("%w: Cannot parse integer value %q for %s", ErrUsage, val, name)
		}
		*p = n
	}
	return nil
}

// Args renders o back into a command line that Parse reads as o (the
// tests check Parse against it).
func (o *Options) Args() []string {
	var out []string
	seen := map[any]bool{} // aliases (--pidfile, --restore-arg) share a field
	for _, opt := range o.table() {
		if seen[opt.ptr] {
			continue
		}
		seen[opt.ptr] = true
		name := "--" + opt.long
		switch p := opt.ptr.(type) {
		case *bool:
			if *p {
				out = append(out, name)
			}
		case *string:
			if *p != "" || (opt.long == "socket-dir-path") {
				out = append(out, name, *p)
			}
		case *[]string:
			for _, v := range *p {
				out = append(out, name, v)
			}
		case *int:
			if *p != 0 {
				out = append(out, name, strconv.Itoa(*p))
			}
		case *int64:
			out = append(out, name, strconv.FormatInt(*p, 10))
		}
	}
	return out
}

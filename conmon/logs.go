package conmon

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/tether-run/tether/crilog"
)

// Log drivers, as conmon names them in -l DRIVER:PATH.
const (
	driverK8sFile     = "k8s-file"
	driverJournald    = "journald"
	driverPassthrough = "passthrough"
	driverNone        = "none"
)

// logDriver is one -l value.
type logDriver struct {
	name string
	path string // k8s-file only
}

// parseLogDrivers reads the -l values: "k8s-file:PATH", a bare PATH
// (k8s-file), "journald" or "journald:", "passthrough", "none"/"off"/"null".
func parseLogDrivers(vals []string) ([]logDriver, error) {
	var out []logDriver
	for _, v := range vals {
		name, path, hasPath := strings.Cut(v, ":")
		if !hasPath {
			switch v {
			case driverJournald, driverPassthrough, driverNone, "off", "null":
				name, path = v, ""
			default:
				name, path = driverK8sFile, v
			}
		}
		switch name {
		case "off", "null":
			name = driverNone
		case driverK8sFile:
			if path == "" {
				return nil, fmt.Errorf("log driver %q needs a path: -l k8s-file:/path/to/ctr.log", v)
			}
		case driverJournald, driverPassthrough, driverNone:
		default:
			return nil, fmt.Errorf("log driver %q is not supported: use k8s-file:PATH, journald, passthrough or none", name)
		}
		out = append(out, logDriver{name: name, path: path})
	}
	return out, nil
}

// passthrough reports whether -l passthrough asks for the container to
// write to the monitor's own stdio (podman's --log-driver passthrough).
func passthrough(o *Options) bool {
	ds, _ := parseLogDrivers(o.LogPaths)
	for _, d := range ds {
		if d.name == driverPassthrough {
			return true
		}
	}
	return false
}

// sink receives container output chunks, stamped with the time they were
// read.
type sink interface {
	write(s crilog.Stream, t time.Time, p []byte)
	close()
}

// openSinks opens the logs -l names. k8s-file uses Tether's crilog writer
// with conmon's --log-size-max behaviour (the file is emptied and written
// again from its start).
func openSinks(o *Options) ([]sink, error) {
	ds, err := parseLogDrivers(o.LogPaths)
	if err != nil {
		return nil, err
	}
	var out []sink
	for _, d := range ds {
		switch d.name {
		case driverK8sFile:
			opts := crilog.Options{NumericZone: true}
			if o.LogSizeMax > 0 {
				opts.MaxSize, opts.Truncate = o.LogSizeMax, true
			}
			w, err := crilog.Open(d.path, opts)
			if err != nil {
				closeSinks(out)
				return nil, err
			}
			out = append(out, &fileSink{w: w})
		case driverJournald:
			j, err := openJournal(o)
			if err != nil {
				closeSinks(out)
				return nil, err
			}
			out = append(out, j)
		}
	}
	return out, nil
}

func closeSinks(ss []sink) {
	for _, s := range ss {
		s.close()
	}
}

// fileSink is a k8s-file log.
type fileSink struct{ w *crilog.Writer }

func (f *fileSink) write(s crilog.Stream, t time.Time, p []byte) { _ = f.w.WriteStream(s, t, p) }
func (f *fileSink) close()                                       { f.w.Sync(); f.w.Close() }

// journalSocket is journald's native protocol socket.
const journalSocket = "/run/systemd/journal/socket"

// journal writes entries with the fields podman's journald reader looks
// for (CONTAINER_ID_FULL, MESSAGE, PRIORITY 6 stdout / 3 stderr,
// CONTAINER_PARTIAL_MESSAGE for a line without its newline).
type journal struct {
	conn   *net.UnixConn
	fields string // the fields common to every entry
	mu     sync.Mutex
	part   [2][]byte // per stream, bytes after the last newline
}

// errNoJournal: journald is not running.
var errNoJournal = errors.New("journald log driver: no journal socket at " + journalSocket + " (is systemd-journald running?)")

func openJournal(o *Options) (*journal, error) {
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: journalSocket, Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errNoJournal, err)
	}
	id := o.CID
	short := id
	if len(short) > 12 {
		short = short[:12]
	}
	f := "CONTAINER_ID=" + short + "\nCONTAINER_ID_FULL=" + id + "\nCONTAINER_NAME=" + o.Name + "\n"
	if o.LogTag != "" {
		f += "CONTAINER_TAG=" + o.LogTag + "\nSYSLOG_IDENTIFIER=" + o.LogTag + "\n"
	} else {
		f += "SYSLOG_IDENTIFIER=" + short + "\n"
	}
	for _, l := range o.LogLabels {
		if k, v, ok := strings.Cut(l, "="); ok {
			f += strings.ToUpper(k) + "=" + v + "\n"
		}
	}
	return &journal{conn: c, fields: f}, nil
}

func (j *journal) write(s crilog.Stream, _ time.Time, p []byte) {
	j.mu.Lock()
	defer j.mu.Unlock()
	i := 0
	if s == crilog.Stderr {
		i = 1
	}
	for len(p) > 0 {
		n := strings.IndexByte(string(p), '\n')
		if n < 0 {
			j.send(i, append(j.part[i], p...), true)
			j.part[i] = nil
			return
		}
		j.send(i, append(j.part[i], p[:n]...), false)
		j.part[i] = nil
		p = p[n+1:]
	}
}

// send writes one entry; MESSAGE uses the binary form so any byte passes.
func (j *journal) send(stream int, msg []byte, partial bool) {
	prio := "6"
	if stream == 1 {
		prio = "3"
	}
	b := []byte(j.fields + "PRIORITY=" + prio + "\n")
	if partial {
		b = append(b, "CONTAINER_PARTIAL_MESSAGE=true\n"...)
	}
	b = append(b, "MESSAGE\n"...)
	var n [8]byte
	l := uint64(len(msg))
	for k := 0; k < 8; k++ {
		n[k] = byte(l >> (8 * k))
	}
	b = append(b, n[:]...)
	b = append(b, msg...)
	b = append(b, '\n')
	_, _ = j.conn.Write(b)
}

func (j *journal) close() { j.conn.Close() }

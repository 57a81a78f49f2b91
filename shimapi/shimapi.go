// Package shimapi owns the wire contract between a manager and tether's
// control socket: one message type per operation, the reply and its
// payloads, the table that turns reply codes into sentinel errors and
// back, the framing of streams, the protocol's own version, the ready
// message a new shim sends its starter, and the shim binary's argv
// actions. It imports nothing above it: neither the shim server nor the
// manager.
//
// The protocol: one request per connection. The client writes one JSON
// request (an envelope, Request, holding one of the messages below) and a
// newline; the shim answers one JSON Response and a newline. For the
// streaming operations (attach, and exec with Attach) the connection then
// carries frames in both directions: a kind byte, a 4-byte big-endian
// length and the payload.
//
// Versions: Request.Version and Response.Version carry the protocol
// version, which changes independently of the record format (package
// store). A shim accepts a request of any version from MinVersion up to
// its own and answers in the request's version; a request of a newer
// version is refused with CodeInvalid and a Response.Version saying which
// version the shim speaks, so a newer client can retry in that one (see
// Downgrade). Frames of every shipped version are kept under testdata/ and
// decoded by a test forever.
package shimapi

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Version is the protocol this build speaks; MinVersion the oldest it
// still serves and speaks. Version 1 shipped first (commit 3911370 and
// before).
const (
	Version    = 1
	MinVersion = 1
)

// Limits of the protocol; a peer that passes them gets an error reply and
// the connection is closed.
const (
	MaxRequestSize = 1 << 20
	MaxFrameSize   = 1 << 20
)

// Frame kinds on a streaming connection.
const (
	FrameStdout     byte = 1 // shim -> client: output
	FrameStderr     byte = 2 // shim -> client: output
	FrameExit       byte = 3 // shim -> client: JSON Exit, last frame
	FrameStdin      byte = 4 // client -> shim: input
	FrameCloseStdin byte = 5 // client -> shim: end of input
	FrameResize     byte = 6 // client -> shim: width, height as two uint16
)

// ErrTooLarge: a message or frame over its limit.
var ErrTooLarge = errors.New("message too large")

// ReadMessage reads one newline-terminated JSON value of at most
// MaxRequestSize bytes into v.
func ReadMessage(r *bufio.Reader, v any) error {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > MaxRequestSize {
			return ErrTooLarge
		}
		if err == nil {
			break
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			if err == io.EOF && len(line) > 0 {
				return io.ErrUnexpectedEOF
			}
			return err
		}
	}
	if err := json.Unmarshal(line, v); err != nil {
		return fmt.Errorf("malformed message: %w", err)
	}
	return nil
}

// WriteMessage writes v as one JSON line.
func WriteMessage(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// WriteFrame writes one frame.
func WriteFrame(w io.Writer, kind byte, p []byte) error {
	if len(p) > MaxFrameSize {
		return ErrTooLarge
	}
	var hdr [5]byte
	hdr[0] = kind
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(p)))
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	_, err := w.Write(p)
	return err
}

// ReadFrame reads one frame, refusing payloads over MaxFrameSize. buf is
// reused when it is large enough.
func ReadFrame(r io.Reader, buf []byte) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > MaxFrameSize {
		return 0, nil, ErrTooLarge
	}
	if cap(buf) < int(n) {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		return 0, nil, io.ErrUnexpectedEOF
	}
	return hdr[0], buf, nil
}

// ResizePayload encodes a FrameResize payload.
func ResizePayload(width, height uint16) []byte {
	var b [4]byte
	binary.BigEndian.PutUint16(b[:], width)
	binary.BigEndian.PutUint16(b[2:], height)
	return b[:]
}

// ParseResize decodes a FrameResize payload; ok is false for a bad size.
func ParseResize(p []byte) (width, height uint16, ok bool) {
	if len(p) != 4 {
		return 0, 0, false
	}
	return binary.BigEndian.Uint16(p), binary.BigEndian.Uint16(p[2:]), true
}

// Actions of the tether-shim binary (its first argument). A manager runs
// "tether-shim start|adopt --root R --id ID [--lock-fd 4] [--debug]"; that
// start helper re-executes itself as "serve" or "serve-adopt" with the
// same flags, and a manager recognises a live shim by that command line in
// /proc/PID/cmdline.
const (
	ActionStart = "start"       // start helper: create
	ActionAdopt = "adopt"       // start helper: adopt an orphan
	ServeCreate = "serve"       // the shim proper, creating
	ServeAdopt  = "serve-adopt" // the shim proper, adopting
	// CheckHandoff is the check mode of an in-place upgrade: "tether-shim
	// check-handoff --root R --id ID --handoff PATH" exits 0 when this
	// binary can take the container over from the handoff at PATH, and
	// otherwise prints why and exits 1. The old shim runs it before it
	// execs the new binary as "serve ... --handoff PATH".
	CheckHandoff = "check-handoff"
)

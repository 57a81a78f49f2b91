package shimapi

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/tether-run/tether/internal/errdefs"
)

// FuzzReadMessage feeds arbitrary bytes to the request decoder the shim
// runs on every connection: it must never panic, never accept more than
// MaxRequestSize, and what it accepts and Validate passes must survive a
// round trip through WriteMessage.
func FuzzReadMessage(f *testing.F) {
	for _, s := range []string{
		`{"v":1,"op":"state"}` + "\n",
		`{"v":1,"op":"kill","signal":9,"all":true}` + "\n",
		`{"v":1,"op":"exec","exec":"e1","process":{"args":["sh"],"cwd":"/"},"attach":true,"stdin":true}` + "\n",
		`{"v":2,"op":"state"}` + "\n",
		`{"v":1,"op":"kill","signal":-1}` + "\n",
		`{"v":1,"op":"exec","exec":"../../x"}` + "\n",
		`{"v":1,"op":"resize","width":65535,"height":0}` + "\n",
		`{"v":1,"op":"state"} {"v":1}` + "\n",
		`{"v":1,"op":"state"`,
		`null` + "\n",
		`[]` + "\n",
		"\n",
		"",
		`{"v":1e400}` + "\n",
		`{"v":1,"process":{"args":"notalist"}}` + "\n",
		strings.Repeat("[", 10000) + "\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var req Request
		err := ReadMessage(bufio.NewReader(bytes.NewReader(data)), &req)
		if err != nil {
			return
		}
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line = data[:i+1]
		}
		if len(line) > MaxRequestSize {
			t.Fatalf("accepted a %d-byte message", len(line))
		}
		if req.Validate() != nil {
			return
		}
		var buf bytes.Buffer
		if err := WriteMessage(&buf, &req); err != nil {
			t.Fatalf("re-encode %+v: %v", req, err)
		}
		var again Request
		if err := ReadMessage(bufio.NewReader(&buf), &again); err != nil {
			t.Fatalf("re-encoded request does not decode: %v", err)
		}
		if err := again.Validate(); err != nil {
			t.Fatalf("re-encoded request no longer valid: %v", err)
		}
		if !reflect.DeepEqual(normalise(t, &req), normalise(t, &again)) {
			t.Fatalf("round trip changed the request:\n%+v\n%+v", req, again)
		}
	})
}

// normalise compares requests by their JSON form (nil and empty slices
// inside a process spec encode alike).
func normalise(t *testing.T, r *Request) string {
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestReadMessageLimits(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want error
	}{
		{"one byte over the bound", `{"v":1,"op":"` + strings.Repeat("x", MaxRequestSize) + `"}` + "\n", ErrTooLarge},
		{"over the bound without newline", strings.Repeat("x", MaxRequestSize+1), ErrTooLarge},
		{"cut short", `{"v":1,"op":"st`, io.ErrUnexpectedEOF},
		{"nothing", "", io.EOF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var req Request
			err := ReadMessage(bufio.NewReader(strings.NewReader(tc.in)), &req)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestRequestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		req  Request
		want error
	}{
		{"state", Request{Version: Version, Op: OpState}, nil},
		{"other version", Request{Version: 2, Op: OpState}, errdefs.ErrVersion},
		{"no version", Request{Op: OpState}, errdefs.ErrInvalid},
		{"unknown op", Request{Version: Version, Op: "reboot"}, errdefs.ErrInvalid},
		{"bad exec id", Request{Version: Version, Op: OpWait, Exec: "../x"}, errdefs.ErrInvalid},
		{"signal 0", Request{Version: Version, Op: OpKill}, errdefs.ErrInvalid},
		{"signal 65", Request{Version: Version, Op: OpKill, Signal: 65}, errdefs.ErrInvalid},
		{"signal 9", Request{Version: Version, Op: OpKill, Signal: 9}, nil},
		{"exec without process", Request{Version: Version, Op: OpExec, Exec: "e"}, errdefs.ErrInvalid},
		{"upgrade", Request{Version: Version, Op: OpUpgrade, Binary: "/usr/bin/tether-shim"}, nil},
		{"upgrade without binary", Request{Version: Version, Op: OpUpgrade}, errdefs.ErrInvalid},
		{"upgrade to a relative path", Request{Version: Version, Op: OpUpgrade, Binary: "bin/tether-shim"}, errdefs.ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.req.Validate()
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line: %q", err)
			}
		})
	}
}

// FuzzReadFrame feeds arbitrary bytes to the frame decoder of streaming
// connections: no panic, no payload over MaxFrameSize, and every frame it
// returns re-encodes to the bytes it came from.
func FuzzReadFrame(f *testing.F) {
	frame := func(kind byte, p string) []byte {
		var b bytes.Buffer
		WriteFrame(&b, kind, []byte(p))
		return b.Bytes()
	}
	f.Add(frame(FrameStdin, "hello"))
	f.Add(append(frame(FrameResize, "\x00\x50\x00\x18"), frame(FrameCloseStdin, "")...))
	f.Add([]byte{FrameStdin, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{FrameStdin, 0, 0x10, 0, 1})
	f.Add([]byte{FrameStdin, 0, 0, 0, 9, 'a'})
	f.Add([]byte{1, 2})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		buf := make([]byte, 16)
		for {
			off := len(data) - r.Len()
			kind, p, err := ReadFrame(r, buf)
			if err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, ErrTooLarge) {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if len(p) > MaxFrameSize {
				t.Fatalf("payload of %d bytes", len(p))
			}
			var out bytes.Buffer
			if err := WriteFrame(&out, kind, p); err != nil {
				t.Fatal(err)
			}
			if end := len(data) - r.Len(); !bytes.Equal(out.Bytes(), data[off:end]) {
				t.Fatalf("frame re-encodes to %x, came from %x", out.Bytes(), data[off:end])
			}
			if binary.BigEndian.Uint32(data[off+1:]) != uint32(len(p)) {
				t.Fatal("length mismatch")
			}
		}
	})
}

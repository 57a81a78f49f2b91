package control

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/tether-run/tether/internal/errdefs"
	"github.com/tether-run/tether/internal/unixsock"
	"github.com/tether-run/tether/shim"
	"github.com/tether-run/tether/shimapi"
	"github.com/tether-run/tether/store"
)

// testServer serves a control socket for a container being "created"
// (Create is never called, so nothing runs): enough to exercise the
// connection handling. Wait requests block, as on a container that never
// exits.
func testServer(t *testing.T, dir string) *Server {
	t.Helper()
	logger := logrus.New()
	logger.SetOutput(io.Discard)
	log := logrus.NewEntry(logger)
	st := store.At(filepath.Dir(dir), filepath.Base(dir))
	rec := &store.Record{ID: filepath.Base(dir), Bundle: "/b", Runtime: "runc"}
	ctx, cancel := context.WithCancel(context.Background())
	core, err := shim.New(ctx, shim.Options{Store: st, Record: rec, Log: log, NoFolderWatch: true})
	if err != nil {
		t.Fatal(err)
	}
	srv := New(core, st, log)
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ctx)
	t.Cleanup(func() { cancel(); core.Close() })
	return srv
}

// testDir is a container folder named c1.
func testDir(t *testing.T) string {
	dir := filepath.Join(t.TempDir(), "c1")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}

// stateCall asks the shim for its state as a manager does.
func stateCall(dir string) (*shimapi.State, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := unixsock.Dial(ctx, filepath.Join(dir, "shim.sock"))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if err := shimapi.WriteMessage(conn, shimapi.NewRequest(shimapi.Version, shimapi.StateReq{})); err != nil {
		return nil, err
	}
	var resp shimapi.Response
	if err := shimapi.ReadMessage(bufio.NewReader(conn), &resp); err != nil {
		return nil, err
	}
	if err := resp.Err(shimapi.Version); err != nil {
		return nil, err
	}
	return resp.State, nil
}

// rawCall sends raw bytes on a fresh connection and returns the reply.
func rawCall(t *testing.T, dir, raw string) (*shimapi.Response, error) {
	t.Helper()
	conn, err := unixsock.Dial(context.Background(), filepath.Join(dir, "shim.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write([]byte(raw)); err != nil {
		t.Fatal(err)
	}
	conn.CloseWrite()
	r := bufio.NewReader(conn)
	var resp shimapi.Response
	if err := shimapi.ReadMessage(r, &resp); err != nil {
		return nil, err
	}
	if _, err := r.ReadByte(); err != io.EOF && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("connection not closed after the reply: %v", err)
	}
	return &resp, nil
}

func TestControlSocketRefusesBadRequests(t *testing.T) {
	dir := testDir(t)
	testServer(t, dir)
	for _, tc := range []struct {
		name, raw, want string
	}{
		{"malformed JSON", "{\"v\":1,\"op\":\n", "malformed message"},
		{"not an object", "[1,2]\n", "malformed message"},
		{"unknown version", `{"v":7,"op":"state"}` + "\n", "protocol version 7"},
		{"unknown op", `{"v":1,"op":"format-disk"}` + "\n", "unknown operation"},
		{"bad exec id", `{"v":1,"op":"wait","exec":"../../etc"}` + "\n", "ID \"../../etc\""},
		{"signal out of range", `{"v":1,"op":"kill","signal":99}` + "\n", "signal 99"},
		{"oversize", `{"v":1,"op":"` + strings.Repeat("a", shimapi.MaxRequestSize+10), "message too large"},
		{"half a request", `{"v":1,"op":"sta`, "unexpected EOF"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := rawCall(t, dir, tc.raw)
			if err != nil {
				t.Fatalf("no error reply: %v", err)
			}
			if resp.Code != shimapi.CodeInvalid || !strings.Contains(resp.Error, tc.want) || strings.Contains(resp.Error, "\n") {
				t.Fatalf("reply %+v, want code %s and one line with %q", resp, shimapi.CodeInvalid, tc.want)
			}
		})
	}
	resp, err := rawCall(t, dir, `{"v":1,"op":"state"}`+"\n")
	if err != nil || resp.State == nil || resp.State.ID != "c1" {
		t.Fatalf("state after bad requests: %+v, %v", resp, err)
	}
}

// TestIdleClientsDoNotBlockOthers opens more idle connections than may
// wait for a request; the oldest are closed, and a live client is still
// answered at once.
func TestIdleClientsDoNotBlockOthers(t *testing.T) {
	dir := testDir(t)
	s := testServer(t, dir)
	var idle []*net.UnixConn
	for i := range maxPending + 20 {
		if i == maxPending {
			time.Sleep(2 * evictGrace) // only those idle that long are evicted
		}
		c, err := unixsock.Dial(context.Background(), filepath.Join(dir, "shim.sock"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		idle = append(idle, c)
	}
	if st, err := stateCall(dir); err != nil || st.ID != "c1" {
		t.Fatalf("state with %d idle clients: %v", len(idle), err)
	}
	// The oldest idle connections have been evicted: they are told why
	// and closed.
	idle[0].SetReadDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(idle[0])
	var resp shimapi.Response
	if err := shimapi.ReadMessage(r, &resp); err != nil || resp.Code != shimapi.CodeInvalid || !strings.Contains(resp.Error, "other connections waited") {
		t.Fatalf("oldest idle connection not evicted with a reason: %+v, %v", resp, err)
	}
	if _, err := r.ReadByte(); !errors.Is(err, io.EOF) {
		t.Fatalf("evicted connection not closed: %v", err)
	}
	for _, c := range idle {
		c.Close()
	}
	deadline := time.Now().Add(10 * time.Second)
	for open, _ := s.conns.count(); open != 0; open, _ = s.conns.count() {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections still counted after every client left", open)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestBurstOfLiveClients connects many more clients at once than may wait
// for a request, each sending its request at once: none is evicted as
// idle, however late the shim gets to it.
func TestBurstOfLiveClients(t *testing.T) {
	dir := testDir(t)
	testServer(t, dir)
	const n = 4 * maxPending
	var conns []*net.UnixConn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range n {
		c, err := unixsock.Dial(context.Background(), filepath.Join(dir, "shim.sock"))
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		if err := shimapi.WriteMessage(c, shimapi.NewRequest(shimapi.Version, shimapi.StateReq{})); err != nil {
			t.Fatal(err)
		}
	}
	for i, c := range conns {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		var resp shimapi.Response
		if err := shimapi.ReadMessage(bufio.NewReader(c), &resp); err != nil || resp.Error != "" || resp.State == nil {
			t.Fatalf("client %d of %d: %+v, %v", i, n, resp, err)
		}
	}
}

// TestConnectionCap fills the shim up to maxConns with waiting clients:
// one more gets a clear refusal, and once they go the shim answers again.
func TestConnectionCap(t *testing.T) {
	dir := testDir(t)
	testServer(t, dir)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var waits []*net.UnixConn
	defer func() {
		for _, c := range waits {
			c.Close()
		}
	}()
	stats := func() *shimapi.Stats {
		resp, err := rawCall(t, dir, `{"v":1,"op":"stats"}`+"\n")
		if err != nil {
			t.Fatal(err)
		}
		return resp.Stats
	}
	// Connect in batches well under maxPending and let the shim read each
	// batch's requests before the next: otherwise a loaded machine leaves
	// more than maxPending unread at once and the oldest are evicted.
	// The last one is opened without asking for stats (that call would be
	// the 1025th connection, refused).
	dialWait := func() {
		c, err := unixsock.Dial(ctx, filepath.Join(dir, "shim.sock"))
		if err != nil {
			t.Skipf("cannot open %d connections: %v", maxConns, err)
		}
		waits = append(waits, c)
		shimapi.WriteMessage(c, shimapi.NewRequest(shimapi.Version, shimapi.WaitReq{})) // init never exits here
	}
	for len(waits) < maxConns-1 {
		for range min(maxPending/4, maxConns-1-len(waits)) {
			dialWait()
		}
		for deadline := time.Now().Add(20 * time.Second); ; {
			if st := stats(); st != nil && st.Pending == 0 && st.Conns == len(waits)+1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d waits not all read: %+v", len(waits), stats())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	dialWait()
	deadline := time.Now().Add(20 * time.Second)
	for {
		// A refused connection is answered and closed at once, maybe before
		// our request is written: read the answer whatever the write said.
		c, err := unixsock.Dial(ctx, filepath.Join(dir, "shim.sock"))
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		c.Write([]byte(`{"v":1,"op":"state"}` + "\n"))
		var resp shimapi.Response
		err = shimapi.ReadMessage(bufio.NewReader(c), &resp)
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(resp.Error, "too many connections") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never refused past %d connections: %+v", maxConns, resp)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, c := range waits {
		c.Close()
	}
	waits = nil
	for deadline := time.Now().Add(20 * time.Second); ; {
		if st := stats(); st != nil && st.Conns == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("connections not released: %+v", stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestListenLongPathAndStaleSocket(t *testing.T) {
	dir := t.TempDir()
	long := filepath.Join(dir, strings.Repeat("d", 60), strings.Repeat("e", 60))
	if err := os.MkdirAll(long, 0o700); err != nil {
		t.Fatal(err)
	}
	st := store.At(filepath.Dir(long), filepath.Base(long))
	path := st.SocketPath()
	if len(path) <= unixsock.MaxPath {
		t.Fatalf("path of %d bytes is not long enough for the test", len(path))
	}
	ln, err := Listen(st)
	if err != nil {
		t.Fatalf("listen on a %d-byte path: %v", len(path), err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode: %v, %v", fi, err)
	}
	// A live socket is never taken over.
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	if _, err := Listen(st); !errors.Is(err, errdefs.ErrExists) {
		t.Fatalf("second listener on a live socket: %v", err)
	}
	// A dead shim's socket file is replaced.
	ln.Close() // SetUnlinkOnClose(false): the file stays, as after a kill -9
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("stale socket file not left: %v", err)
	}
	ln2, err := Listen(st)
	if err != nil {
		t.Fatalf("listen over a stale socket: %v", err)
	}
	defer ln2.Close()
	go func() {
		c, err := ln2.Accept()
		if err == nil {
			c.Write([]byte("x"))
			c.Close()
		}
	}()
	c, err := unixsock.Dial(context.Background(), path)
	if err != nil {
		t.Fatalf("dial the new socket: %v", err)
	}
	defer c.Close()
	if _, err := c.Read(make([]byte, 1)); err != nil {
		t.Fatalf("new socket not served: %v", err)
	}
}

// TestLiveClientAfterIdleCrowd connects a crowd of idle clients, some with
// half a request sent, and right behind them a live one: the live one is
// answered, whatever order the shim's goroutines run in.
func TestLiveClientAfterIdleCrowd(t *testing.T) {
	dir := testDir(t)
	testServer(t, dir)
	for round := range 5 {
		var idle []*net.UnixConn
		for i := range 4 * maxPending {
			c, err := unixsock.Dial(context.Background(), filepath.Join(dir, "shim.sock"))
			if err != nil {
				t.Fatal(err)
			}
			if i%4 == 0 {
				c.Write([]byte(`{"v":1,"op":"st`))
			}
			idle = append(idle, c)
		}
		st, err := stateCall(dir)
		for _, c := range idle {
			c.Close()
		}
		if err != nil || st.ID != "c1" {
			t.Fatalf("round %d: state behind %d idle clients: %v", round, len(idle), err)
		}
	}
}

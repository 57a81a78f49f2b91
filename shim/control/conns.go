package control

import (
	"fmt"
	"net"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Limits of the control socket. A peer is root or the shim's own user
// (SO_PEERCRED), but a buggy or stuck one must still not be able to wedge
// the shim: it gets requestTimeout to send its request; once maxPending
// connections are waiting to send one, each new one evicts the oldest idle
// one; and at most maxConns may be open at all (wait and attach hold
// theirs for as long as they like), past which a new connection gets an
// error reply and is closed.
const (
	requestTimeout = 5 * time.Second
	maxPending     = 64
	evictGrace     = 100 * time.Millisecond
	maxConns       = 1024
)

// errTooManyConns is the reply past maxConns.
var errTooManyConns = fmt.Errorf("too many connections to this shim (%d): close some and try again", maxConns)

// waiter is a connection whose request has not been read yet.
type waiter struct {
	conn  *net.UnixConn
	since time.Time
}

// conns tracks the open control connections of a shim.
type conns struct {
	mu      sync.Mutex
	open    int
	pending []waiter // accept order: connected, request not read yet
	evicted map[*net.UnixConn]bool
}

// admit counts a new connection, or reports false past maxConns.
func (c *conns) admit() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.open >= maxConns {
		return false
	}
	c.open++
	return true
}

func (c *conns) release() {
	c.mu.Lock()
	c.open--
	c.mu.Unlock()
}

// count returns the open connections and those still waiting to send
// their request.
func (c *conns) count() (open, pending int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.open, len(c.pending)
}

// waiting marks conn as waiting for its request. The accept loop calls it
// in accept order, so pending stays oldest first. Past maxPending one
// waiting connection is evicted so idle clients cannot crowd out live
// ones: the oldest that has waited evictGrace or more with nothing queued
// to read. A younger one may be a client that has yet to write, and one
// whose request sits unread in the socket is a live client whose goroutine
// has not run yet. If none qualifies nobody is evicted; maxConns and
// requestTimeout still bound the crowd.
//
// Eviction expires the read deadline rather than closing the connection:
// a request already read whole survives it (readRequest takes the
// connection off the list before it clears the deadline), and the evicted
// client is told why.
func (c *conns) waiting(conn *net.UnixConn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if len(c.pending) >= maxPending {
		for i, w := range c.pending {
			if now.Sub(w.since) < evictGrace {
				break // the rest are younger still
			}
			if queued(w.conn) != 0 {
				continue
			}
			w.conn.SetReadDeadline(now)
			if c.evicted == nil {
				c.evicted = make(map[*net.UnixConn]bool)
			}
			c.evicted[w.conn] = true
			c.pending = append(c.pending[:i:i], c.pending[i+1:]...)
			break
		}
	}
	c.pending = append(c.pending, waiter{conn, now})
}

// read takes conn off the waiting list and reports whether it had been
// evicted from it.
func (c *conns) read(conn *net.UnixConn) (evicted bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.evicted[conn] {
		delete(c.evicted, conn)
		return true
	}
	for i, w := range c.pending {
		if w.conn == conn {
			c.pending = append(c.pending[:i:i], c.pending[i+1:]...)
			break
		}
	}
	return false
}

// queued returns how many bytes wait unread in conn's receive queue, or -1
// if that cannot be told.
func queued(conn *net.UnixConn) int {
	raw, err := conn.SyscallConn()
	if err != nil {
		return -1
	}
	n := -1
	raw.Control(func(fd uintptr) {
		if v, err := unix.IoctlGetInt(int(fd), unix.SIOCINQ); err == nil {
			n = v
		}
	})
	return n
}

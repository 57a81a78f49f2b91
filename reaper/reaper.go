// Package reaper owns reaping of child processes in the shim and the fan-out
// of their exits.
//
// A shim is a child subreaper (see SetSubreaper): container init processes
// and every orphan below them are reparented to it, so some code has to call
// wait4 on them or they stay zombies. That code is this package and nothing
// else: a Monitor runs the one wait4(-1) loop of the process and broadcasts
// every Exit to every Subscription. Code that needs the status of a command
// it starts itself (runc create, runc kill, ...) must not call cmd.Wait to
// get it, because the loop may reap the child first and the status is then
// lost; it uses Monitor.Start, which subscribes before the command starts and
// picks the command's pid out of the broadcast.
//
// The package knows nothing of containers, runc or OCI: it deals in pids and
// wait statuses only. Deciding which pid is a container's init process, and
// what its exit means, is the caller's business.
package reaper

import (
	"context"
	"errors"
	"sync"
	"time"
)

// ErrClosed is returned by Subscription.Next once the subscription is closed,
// either by Subscription.Close or because its Monitor stopped, and its queue
// is empty.
var ErrClosed = errors.New("reaper: subscription closed")

// ErrStopped is returned by Monitor.Reap once the Monitor's loop has stopped;
// a stopped Monitor never waits for a child again.
var ErrStopped = errors.New("reaper: monitor stopped")

// Exit is one reaped child. The zero Exit means nothing.
type Exit struct {
	// Pid is the process id of the reaped child. The kernel may reuse it
	// for a new process as soon as the child was reaped.
	Pid int
	// Status is the exit status in the convention of ExitStatus: the exit
	// code for a normal exit, 128+N for death by signal N.
	Status int
	// Timestamp is when the Monitor reaped the child (not when it died;
	// the two differ by the latency of the reaping loop).
	Timestamp time.Time
}

// Monitor owns waiting for children: it reaps them (Run, Reap) and broadcasts
// each Exit to all Subscriptions open at the time of the reap.
//
// The zero Monitor is ready to use and equivalent to New(). A Monitor must
// not be copied after first use. Use exactly one Monitor per process and run
// nothing else in the process that waits for children (no cmd.Wait,
// os.Process.Wait, wait4 outside this package), except through the Monitor
// or after its loop has stopped.
//
// A Monitor reaps nothing until Run is called (or Reap is called by hand);
// until then children exit into zombies and Start's wait functions block.
type Monitor struct {
	mu      sync.Mutex
	subs    map[*Subscription]struct{}
	running bool          // Run was called
	stopped bool          // the loop stopped; no more reaping
	done    chan struct{} // closed when stopped is set
	kick    chan struct{} // cap 1: Start made a child (set by Run)

	// pass serialises reap passes with each other and with shutdown, so
	// that every reaped Exit is broadcast before subscriptions are closed.
	pass sync.Mutex
}

// New returns a Monitor that does not reap until Run is called.
func New() *Monitor {
	return &Monitor{}
}

// Done returns a channel that is closed when the loop started by Run has
// stopped: its context is done, the last reap pass was broadcast and every
// Subscription was closed. It is never closed if Run is never called.
func (m *Monitor) Done() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.doneLocked()
}

func (m *Monitor) doneLocked() chan struct{} {
	if m.done == nil {
		m.done = make(chan struct{})
	}
	return m.done
}

// Subscribe returns a new Subscription that receives every Exit reaped from
// now on, until it is closed. Subscribe before the event you care about can
// happen: for a command, before starting it (Start does this for you).
//
// The caller must Close the Subscription when done; an open Subscription
// queues every exit of the process forever, without bound. If the Monitor has
// already stopped, the Subscription is returned closed.
func (m *Monitor) Subscribe() *Subscription {
	s := &Subscription{
		m:      m,
		notify: make(chan struct{}, 1),
		done:   make(chan struct{}),
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopped {
		s.shut(false)
		return s
	}
	if m.subs == nil {
		m.subs = make(map[*Subscription]struct{})
	}
	m.subs[s] = struct{}{}
	return s
}

func (m *Monitor) unsubscribe(s *Subscription) {
	m.mu.Lock()
	delete(m.subs, s)
	m.mu.Unlock()
}

// broadcast queues exits on every subscription open now. It never blocks on
// a subscriber: queues are unbounded.
func (m *Monitor) broadcast(exits []Exit) {
	if len(exits) == 0 {
		return
	}
	m.mu.Lock()
	subs := make([]*Subscription, 0, len(m.subs))
	for s := range m.subs {
		subs = append(subs, s)
	}
	m.mu.Unlock()
	for _, s := range subs {
		s.push(exits)
	}
}

// shutdown marks the Monitor stopped and closes every Subscription, keeping
// their queued exits readable. It waits for a running reap pass to finish.
func (m *Monitor) shutdown() {
	m.pass.Lock()
	defer m.pass.Unlock()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.stopped = true
	for s := range m.subs {
		s.shut(false)
	}
	m.subs = nil
	close(m.doneLocked())
}

// childMade wakes a loop that waits because the process had no child.
func (m *Monitor) childMade() {
	m.mu.Lock()
	kick := m.kick
	m.mu.Unlock()
	if kick != nil {
		select {
		case kick <- struct{}{}:
		default:
		}
	}
}

func (m *Monitor) isStopped() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stopped
}

// Subscription is an unbounded queue of the Exits reaped since Subscribe.
// Reaping never blocks on it and never drops an exit for it, however slowly
// it is read; the price is memory, so Close it when done.
//
// Obtain Subscriptions from Monitor.Subscribe only; the zero value is not
// usable. Read a Subscription either with Next or with C and Drain, from one
// goroutine at a time.
type Subscription struct {
	m      *Monitor
	notify chan struct{} // cap 1: "the queue may be non-empty"
	done   chan struct{} // closed on close

	mu     sync.Mutex
	queue  []Exit
	closed bool
}

// push appends exits unless the subscription is closed, then signals C.
func (s *Subscription) push(exits []Exit) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.queue = append(s.queue, exits...)
	s.mu.Unlock()
	s.signal()
}

func (s *Subscription) signal() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// pop removes the oldest queued exit. ok reports whether there was one.
func (s *Subscription) pop() (e Exit, ok, closed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) == 0 {
		s.queue = nil // let a grown backing array go
		return Exit{}, false, s.closed
	}
	e = s.queue[0]
	s.queue = s.queue[1:]
	return e, true, s.closed
}

// Next returns the oldest queued Exit, blocking until there is one. It
// returns ctx.Err() when ctx is done first, and ErrClosed when the
// subscription is closed and nothing is queued any more (exits queued
// before the Monitor stopped are still returned first).
func (s *Subscription) Next(ctx context.Context) (Exit, error) {
	for {
		e, ok, closed := s.pop()
		if ok {
			return e, nil
		}
		if closed {
			return Exit{}, ErrClosed
		}
		select {
		case <-s.notify:
		case <-s.done:
		case <-ctx.Done():
			return Exit{}, ctx.Err()
		}
	}
}

// C returns a channel with a buffer of one that is signalled, without
// blocking the reaper, after exits were queued and once more when the
// subscription is closed. A signal may stand for many exits, so call Drain
// after each receive. Intended for select with other channels.
func (s *Subscription) C() <-chan struct{} {
	return s.notify
}

// Drain returns all queued exits, oldest first, and empties the queue. It
// returns nil when nothing is queued.
func (s *Subscription) Drain() []Exit {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queue
	s.queue = nil
	return q
}

// Close unsubscribes and discards the queue. It is idempotent and safe to
// call concurrently with broadcasts, Next and other Close calls; exits reaped
// after Close starts may or may not be queued, but never block anything.
func (s *Subscription) Close() {
	s.m.unsubscribe(s)
	s.shut(true)
}

// shut marks the subscription closed and wakes readers. discard drops the
// queue (Close) or keeps it readable (Monitor shutdown).
func (s *Subscription) shut(discard bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if discard {
		s.queue = nil
	}
	if s.closed {
		return
	}
	s.closed = true
	close(s.done)
	s.signal()
}

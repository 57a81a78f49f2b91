package shim

import (
	"context"
	"sync"
	"time"

	"github.com/tether-run/tether/store"
)

// EventKind says what an Event reports.
type EventKind string

// Kinds of Event.
const (
	// EventExit: a process of the container ended; Exec and Exit say which
	// and how. Published once its exit record is durable and its waiters
	// have been woken.
	EventExit EventKind = "exit"
	// EventOOM: the kernel's OOM killer killed a process of the container;
	// OOM says when and the count so far. When the victim was init, the
	// event comes after init's exit record (oom_killed) is durable, right
	// before init's EventExit; when it was another process, as soon as the
	// cgroup reports it.
	EventOOM EventKind = "oom"
)

// Event is something that happened to the container.
type Event struct {
	Kind EventKind
	// Exec is the exec'd process's ID, "" for init (EventExit).
	Exec string
	// Exit is its exit record (EventExit).
	Exit store.ExitRecord
	// OOM is set for EventOOM.
	OOM *OOM
}

// OOM describes an OOM kill in the container's cgroup.
type OOM struct {
	// Time is when the shim noticed it.
	Time time.Time
	// Kills is the cgroup's OOM kill count after it: the total since the
	// group was made.
	Kills uint64
}

// events fans Events out to subscriptions; none is ever dropped or
// blocks the exit path: each subscription queues without bound (a
// container has one init and at most ExecRetention finished execs kept,
// so a subscriber that never reads holds little).
type events struct {
	mu   sync.Mutex
	subs map[*Subscription]struct{}
}

// Subscription receives the Events published after Subscribe.
type Subscription struct {
	ev     *events
	mu     sync.Mutex
	queue  []Event
	notify chan struct{} // holds a token while queue is not empty
	closed bool
}

// Subscribe returns a subscription to the exits of init and of every
// exec'd process, and to OOM kills, from now on. A front end subscribes before Create or
// Exec so that no exit is missed. Close it when done.
func (s *Shim) Subscribe() *Subscription {
	sub := &Subscription{ev: &s.events, notify: make(chan struct{}, 1)}
	s.events.mu.Lock()
	if s.events.subs == nil {
		s.events.subs = map[*Subscription]struct{}{}
	}
	s.events.subs[sub] = struct{}{}
	s.events.mu.Unlock()
	return sub
}

func (e *events) publish(ev Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for sub := range e.subs {
		sub.mu.Lock()
		sub.queue = append(sub.queue, ev)
		sub.mu.Unlock()
		select {
		case sub.notify <- struct{}{}:
		default:
		}
	}
}

// Next returns the next Event, in the order they were published, or ctx's
// error; after Close it returns context.Canceled.
func (sub *Subscription) Next(ctx context.Context) (Event, error) {
	for {
		sub.mu.Lock()
		if sub.closed {
			sub.mu.Unlock()
			return Event{}, context.Canceled
		}
		if len(sub.queue) > 0 {
			ev := sub.queue[0]
			sub.queue = sub.queue[1:]
			if len(sub.queue) > 0 {
				select {
				case sub.notify <- struct{}{}:
				default:
				}
			}
			sub.mu.Unlock()
			return ev, nil
		}
		sub.mu.Unlock()
		select {
		case <-sub.notify:
		case <-ctx.Done():
			return Event{}, ctx.Err()
		}
	}
}

// Close ends the subscription.
func (sub *Subscription) Close() {
	sub.ev.mu.Lock()
	delete(sub.ev.subs, sub)
	sub.ev.mu.Unlock()
	sub.mu.Lock()
	sub.closed = true
	sub.mu.Unlock()
	select {
	case sub.notify <- struct{}{}:
	default:
	}
}

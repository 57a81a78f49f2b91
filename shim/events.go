package shim

import (
	"context"
	"sync"

	"github.com/tether-run/tether/store"
)

// Event is the end of one process of the container, published once its
// exit record is durable and its waiters have been woken.
type Event struct {
	// Exec is the exec'd process's ID, "" for init.
	Exec string
	// Exit is its exit record.
	Exit store.ExitRecord
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
// exec'd process from now on. A front end subscribes before Create or
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

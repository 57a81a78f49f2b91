package containerd

import (
	"context"
	"net"
	"strings"
	"sync"
	"time"

	eventsapi "github.com/containerd/containerd/api/services/ttrpc/events/v1"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/ttrpc"
	"github.com/sirupsen/logrus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Topics of the task events, as containerd's runtime v2 names them.
const (
	TopicTaskCreate      = "/tasks/create"
	TopicTaskStart       = "/tasks/start"
	TopicTaskExit        = "/tasks/exit"
	TopicTaskDelete      = "/tasks/delete"
	TopicTaskExecAdded   = "/tasks/exec-added"
	TopicTaskExecStarted = "/tasks/exec-started"
	TopicTaskPaused      = "/tasks/paused"
	TopicTaskResumed     = "/tasks/resumed"
	TopicTaskOOM         = "/tasks/oom"
)

// Retry pacing of the publisher: the first retry comes after
// retryMin, each next one after twice as long, at most retryMax.
const (
	retryMin    = 50 * time.Millisecond
	retryMax    = time.Second
	sendTimeout = 5 * time.Second
	dialTimeout = 2 * time.Second
)

// Publisher forwards task events to containerd's ttrpc events service
// (TTRPC_ADDRESS), one at a time and in the order they were published. A
// send that fails (containerd down, restarting, its socket gone) is
// retried, reconnecting each time, until it is delivered or the publisher
// is closed: an exit that happens during a containerd outage of any
// length arrives once containerd is back. Publish never blocks.
//
// Events are wrapped in an Any whose type URL is the bare proto name
// ("containerd.events.TaskExit"): containerd 1.6 looks events up by that
// name and cannot decode the "type.googleapis.com/" form.
type Publisher struct {
	addr, ns string
	log      *logrus.Entry
	dial     func(ctx context.Context, addr string) (net.Conn, error)

	mu      sync.Mutex
	queue   []*types.Envelope
	wake    chan struct{} // a buffered poke: something was queued or close asked
	closing bool
	done    chan struct{} // closed when the sending loop has ended

	client *ttrpc.Client // owned by the sending loop
}

// NewPublisher starts a publisher for containerd's ttrpc address addr
// (a socket path, "unix://" prefix allowed) and namespace ns.
func NewPublisher(addr, ns string, log *logrus.Entry) *Publisher {
	if log == nil {
		log = logrus.NewEntry(logrus.StandardLogger())
	}
	p := &Publisher{addr: strings.TrimPrefix(addr, "unix://"), ns: ns, log: log,
		wake: make(chan struct{}, 1), done: make(chan struct{})}
	p.dial = func(ctx context.Context, addr string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", addr)
	}
	go p.loop()
	return p
}

// Publish queues ev under topic. It is sent after every event published
// before it.
func (p *Publisher) Publish(topic string, ev proto.Message) {
	b, err := proto.Marshal(ev)
	if err != nil {
		p.log.WithError(err).WithField("topic", topic).Error("marshal event")
		return
	}
	env := &types.Envelope{Timestamp: timestamppb.Now(), Namespace: p.ns, Topic: topic,
		Event: &anypb.Any{TypeUrl: string(proto.MessageName(ev)), Value: b}}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closing {
		p.log.WithField("topic", topic).Warn("event published after close: dropped")
		return
	}
	p.queue = append(p.queue, env)
	p.poke()
}

func (p *Publisher) poke() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Pending is the number of events not delivered yet.
func (p *Publisher) Pending() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.queue)
}

// Close waits up to timeout for the queued events to be delivered, then
// stops; it returns how many were left undelivered.
func (p *Publisher) Close(timeout time.Duration) int {
	p.mu.Lock()
	p.closing = true
	p.poke()
	p.mu.Unlock()
	select {
	case <-p.done:
	case <-time.After(timeout):
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	left := len(p.queue)
	p.queue = nil
	p.poke()
	return left
}

// loop sends the head of the queue until it is delivered, then the next.
func (p *Publisher) loop() {
	defer close(p.done)
	backoff := retryMin
	for {
		env, stop := p.head()
		if stop {
			p.disconnect()
			return
		}
		if env == nil {
			<-p.wake
			continue
		}
		if err := p.send(env); err != nil {
			if rejected(err) {
				// containerd answered and refused it: retrying would hold
				// up every later event for good.
				p.log.WithError(err).WithField("topic", env.Topic).Error("containerd refused the event: dropped")
				p.pop(env)
				continue
			}
			p.log.WithError(err).WithField("topic", env.Topic).Debug("event not delivered yet; retrying")
			p.disconnect()
			select {
			case <-time.After(backoff):
			case <-p.wake:
				p.poke() // keep the wake-up for head(): it may be a close
				time.Sleep(backoff)
			}
			backoff = min(2*backoff, retryMax)
			continue
		}
		backoff = retryMin
		p.pop(env)
	}
}

// head returns the first queued event; stop is true once the publisher
// is closing and has nothing left, or was told to give up.
func (p *Publisher) head() (env *types.Envelope, stop bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.queue) == 0 {
		return nil, p.closing
	}
	return p.queue[0], false
}

func (p *Publisher) pop(env *types.Envelope) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.queue) > 0 && p.queue[0] == env {
		p.queue[0] = nil
		p.queue = p.queue[1:]
	}
}

func (p *Publisher) send(env *types.Envelope) error {
	if p.client == nil {
		ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
		conn, err := p.dial(ctx, p.addr)
		cancel()
		if err != nil {
			return err
		}
		p.client = ttrpc.NewClient(conn)
	}
	ctx, cancel := context.WithTimeout(context.Background(), sendTimeout)
	defer cancel()
	_, err := eventsapi.NewTTRPCEventsClient(p.client).Forward(ctx, &eventsapi.ForwardRequest{Envelope: env})
	return err
}

// rejected tells a refusal by containerd (a status it answered) from a
// failure to reach it, which is worth retrying.
func rejected(err error) bool {
	st, ok := status.FromError(err)
	if !ok {
		return false
	}
	switch st.Code() {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled, codes.Unknown:
		return false
	}
	return true
}

func (p *Publisher) disconnect() {
	if p.client != nil {
		p.client.Close()
		p.client = nil
	}
}

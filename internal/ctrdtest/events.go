// Package ctrdtest holds test doubles for the containerd front end: a fake
// containerd events service (ttrpc) that records what a shim forwards and
// can be stopped and started again, as a containerd restart would.
package ctrdtest

import (
	"context"
	"net"
	"os"
	"sync"
	"time"

	eventsapi "github.com/containerd/containerd/api/services/ttrpc/events/v1"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/ttrpc"
	"google.golang.org/protobuf/types/known/emptypb"
)

// Events is a fake containerd.services.events.ttrpc.v1.Events server on
// a unix socket path.
type Events struct {
	Path string

	mu       sync.Mutex
	got      []*types.Envelope
	changed  chan struct{}
	srv      *ttrpc.Server
	lnClosed chan struct{}
}

// NewEvents starts the server on path.
func NewEvents(path string) (*Events, error) {
	e := &Events{Path: path, changed: make(chan struct{})}
	return e, e.Start()
}

// Start serves (again) on Path.
func (e *Events) Start() error {
	os.Remove(e.Path)
	ln, err := net.Listen("unix", e.Path)
	if err != nil {
		return err
	}
	srv, err := ttrpc.NewServer()
	if err != nil {
		ln.Close()
		return err
	}
	eventsapi.RegisterTTRPCEventsService(srv, e)
	e.mu.Lock()
	e.srv = srv
	e.mu.Unlock()
	go srv.Serve(context.Background(), ln)
	return nil
}

// Stop closes the server and its connections, and removes the socket.
func (e *Events) Stop() {
	e.mu.Lock()
	srv := e.srv
	e.srv = nil
	e.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
	os.Remove(e.Path)
}

// Forward records one event.
func (e *Events) Forward(ctx context.Context, r *eventsapi.ForwardRequest) (*emptypb.Empty, error) {
	e.mu.Lock()
	e.got = append(e.got, r.Envelope)
	close(e.changed)
	e.changed = make(chan struct{})
	e.mu.Unlock()
	return &emptypb.Empty{}, nil
}

// Received returns the events received so far, in order.
func (e *Events) Received() []*types.Envelope {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]*types.Envelope(nil), e.got...)
}

// WaitFor waits up to d until an event of topic has arrived, and returns
// the events received by then.
func (e *Events) WaitFor(topic string, d time.Duration) ([]*types.Envelope, bool) {
	deadline := time.After(d)
	for {
		e.mu.Lock()
		got := append([]*types.Envelope(nil), e.got...)
		ch := e.changed
		e.mu.Unlock()
		for _, env := range got {
			if env.Topic == topic {
				return got, true
			}
		}
		select {
		case <-ch:
		case <-deadline:
			return got, false
		}
	}
}

// Topics lists the topics of envs.
func Topics(envs []*types.Envelope) []string {
	var out []string
	for _, env := range envs {
		out = append(out, env.Topic)
	}
	return out
}

package containerd

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/containerd/containerd/api/events"
	"github.com/tether-run/tether/internal/ctrdtest"
	"google.golang.org/protobuf/proto"
)

func TestPublisherRetriesThroughRestart(t *testing.T) {
	dir, err := os.MkdirTemp("", "pub")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "events.sock")
	fake, err := ctrdtest.NewEvents(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Stop()
	p := NewPublisher("unix://"+sock, "ns1", nil)
	defer p.Close(time.Second)

	p.Publish(TopicTaskCreate, &events.TaskCreate{ContainerID: "c1", Pid: 10})
	p.Publish(TopicTaskStart, &events.TaskStart{ContainerID: "c1", Pid: 10})
	if _, ok := fake.WaitFor(TopicTaskStart, 5*time.Second); !ok {
		t.Fatalf("start event not delivered: %v", ctrdtest.Topics(fake.Received()))
	}
	// The publisher has its answer too (under load it may come well after
	// the fake got the event; cut before it, the start would be resent).
	for deadline := time.Now().Add(5 * time.Second); p.Pending() != 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("start delivered but still pending: %d", p.Pending())
		}
	}

	// containerd goes away; the exit happens meanwhile, then containerd is
	// back after longer than a few retries.
	fake.Stop()
	time.Sleep(300 * time.Millisecond) // its connections are closed
	p.Publish(TopicTaskExit, &events.TaskExit{ContainerID: "c1", ID: "c1", Pid: 10, ExitStatus: 3})
	p.Publish(TopicTaskDelete, &events.TaskDelete{ContainerID: "c1", Pid: 10, ExitStatus: 3})
	time.Sleep(2500 * time.Millisecond)
	if n := p.Pending(); n != 2 {
		t.Fatalf("pending while containerd is down: %d, want 2", n)
	}
	if err := fake.Start(); err != nil {
		t.Fatal(err)
	}
	got, ok := fake.WaitFor(TopicTaskDelete, 5*time.Second)
	if !ok {
		t.Fatalf("events after the restart not delivered: %v", ctrdtest.Topics(got))
	}
	want := []string{TopicTaskCreate, TopicTaskStart, TopicTaskExit, TopicTaskDelete}
	if !slices.Equal(ctrdtest.Topics(got), want) {
		t.Fatalf("topics %v, want %v (in order, once each)", ctrdtest.Topics(got), want)
	}
	exit := got[2]
	if exit.Namespace != "ns1" || exit.Event.TypeUrl != "containerd.events.TaskExit" {
		t.Fatalf("exit envelope: namespace %q type %q; want ns1, containerd.events.TaskExit (bare name)", exit.Namespace, exit.Event.TypeUrl)
	}
	var te events.TaskExit
	if err := proto.Unmarshal(exit.Event.Value, &te); err != nil || te.ExitStatus != 3 || te.ContainerID != "c1" {
		t.Fatalf("exit event %v (%v), want c1 status 3", &te, err)
	}
}

func TestPublisherCloseGivesUp(t *testing.T) {
	dir := t.TempDir()
	p := NewPublisher(filepath.Join(dir, "nobody.sock"), "ns1", nil)
	p.Publish(TopicTaskExit, &events.TaskExit{ContainerID: "c1"})
	start := time.Now()
	if left := p.Close(300 * time.Millisecond); left != 1 {
		t.Fatalf("undelivered after close: %d, want 1", left)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("close took %v", d)
	}
}

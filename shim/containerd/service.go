// Package containerd is Tether's front end for containerd's runtime v2
// contract: the ttrpc service containerd.task.v2.Task over Tether's shim
// core, for the one container a containerd-shim-tether-v1 process serves,
// and the publisher that forwards its task events to containerd.
//
// It translates: containerd's requests into calls of the core, the core's
// states and exit records into containerd's types, and the process's
// output to the FIFOs (or binary:// and file:// URIs) containerd names.
// It does not reap, write exit records or talk to the OCI runtime: the
// core does. It refuses to adopt a container whose shim died: containerd
// turns a dead shim into the binary's `delete`.
package containerd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/containerd/api/events"
	taskapi "github.com/containerd/containerd/api/runtime/task/v2"
	"github.com/containerd/containerd/api/types/runc/options"
	tasktypes "github.com/containerd/containerd/api/types/task"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/sirupsen/logrus"
	"github.com/tether-run/tether/internal/ids"
	"github.com/tether-run/tether/shim"
	"github.com/tether-run/tether/store"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Timeouts of the adapter.
const (
	// readyTimeout bounds Create's wait for the core (the OCI runtime's
	// own deadline is shorter).
	readyTimeout = 2 * time.Minute
	// ioFlushTimeout is how long an exit waits for the process's output
	// to reach containerd before it is reported anyway.
	ioFlushTimeout = 2 * time.Second
	// deleteTimeout bounds Delete's wait for the core to finish.
	deleteTimeout = 10 * time.Second
)

// EventSink receives the task events; *Publisher is one.
type EventSink interface {
	Publish(topic string, ev proto.Message)
}

// Config configures a Service. Namespace and ID are the -namespace and -id
// containerd started the shim with.
type Config struct {
	Namespace, ID string
	Events        EventSink
	Log           *logrus.Entry
	// Shutdown is called once, in its own goroutine, when containerd asks
	// the shim to end and no task is left. It should stop the server and
	// exit the process.
	Shutdown func()
}

// Service implements containerd.task.v2.Task for one task. Its methods
// may run concurrently: no lock is held across a call to the core, so a
// blocked Wait never delays State.
type Service struct {
	cfg Config

	mu      sync.Mutex
	t       *task
	created bool // Create ran once: the core may run once per process

	shutdownOnce sync.Once
}

// New returns the service; it serves nothing until Create.
func New(cfg Config) *Service {
	if cfg.Log == nil {
		cfg.Log = logrus.NewEntry(logrus.StandardLogger())
	}
	if cfg.Events == nil {
		cfg.Events = discard{}
	}
	return &Service{cfg: cfg}
}

type discard struct{}

func (discard) Publish(string, proto.Message) {}

// task is the container being served.
type task struct {
	id, bundle string
	core       *shim.Shim
	mounted    bool
	init       *process
	// coreEventsDone is closed once the core's events up to init's exit
	// (its OOM kills) have been forwarded to containerd.
	coreEventsDone chan struct{}

	mu      sync.Mutex
	execs   map[string]*process
	deleted bool
}

// process is init or an exec'd process as containerd sees it.
type process struct {
	execID string // "" for init
	io     stdio
	spec   *specs.Process // exec only

	mu      sync.Mutex
	started bool
	pid     int
	sinks   *sinks
	stdin   *fifoReader // nil without stdin
	exit    *store.ExitRecord
	exited  chan struct{} // closed once exit is set and TaskExit published
	// starting is set when Start (or an exec's start) begins; startDone
	// is closed once its event is out, so TaskExit never comes first.
	starting  bool
	startDone chan struct{}
	startOnce sync.Once
}

// startEnded marks the start event as published (or never to come).
func (p *process) startEnded() { p.startOnce.Do(func() { close(p.startDone) }) }

func newProcess(execID string, in stdio) *process {
	p := &process{execID: execID, io: in, exited: make(chan struct{}), startDone: make(chan struct{})}
	if in.Stdin != "" {
		p.stdin = &fifoReader{path: in.Stdin}
	}
	return p
}

func (p *process) current() (started bool, pid int, exit *store.ExitRecord) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.started, p.pid, p.exit
}

// coreIO is where the core sends the process's output (containerd's, not
// a log of Tether's) and takes its input from.
func (p *process) coreIO(sk *sinks) shim.IO {
	io := shim.IO{NoLog: true, Stdout: sk.stdout, Stderr: sk.stderr}
	if p.stdin != nil {
		io.Stdin = p.stdin
	}
	return io
}

// getTask returns the task named id.
func (s *Service) getTask(id string) (*task, error) {
	s.mu.Lock()
	t := s.t
	s.mu.Unlock()
	if t == nil || t.id != id {
		return nil, status.Errorf(codes.NotFound, "task %s: not found", id)
	}
	return t, nil
}

// getProcess returns task id and its process execID (init for "").
func (s *Service) getProcess(id, execID string) (*task, *process, error) {
	t, err := s.getTask(id)
	if err != nil {
		return nil, nil, err
	}
	p, err := t.process(execID)
	if err != nil {
		return nil, nil, err
	}
	return t, p, nil
}

// process returns init (execID "") or the exec'd process execID.
func (t *task) process(execID string) (*process, error) {
	if execID == "" {
		return t.init, nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	p, ok := t.execs[execID]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "exec %s of task %s: not found", execID, t.id)
	}
	return p, nil
}

// Create mounts the rootfs, has the core create the container, connects
// its output to containerd's FIFOs and publishes TaskCreate.
func (s *Service) Create(ctx context.Context, r *taskapi.CreateTaskRequest) (*taskapi.CreateTaskResponse, error) {
	if r.Checkpoint != "" || r.ParentCheckpoint != "" {
		return nil, status.Errorf(codes.Unimplemented, "create from a checkpoint: not implemented by containerd-shim-tether-v1 yet")
	}
	if err := ids.ValidID(r.ID); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "task id %q: %v: Tether needs [A-Za-z0-9][A-Za-z0-9_.-]{0,63}", r.ID, err)
	}
	s.mu.Lock()
	if s.created {
		s.mu.Unlock()
		return nil, status.Errorf(codes.AlreadyExists, "this shim already serves a task: containerd starts one containerd-shim-tether-v1 per task")
	}
	s.created = true
	s.mu.Unlock()
	opts, err := runcOptions(r.Options)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "%v", err)
	}
	t, err := s.create(r, opts)
	if err != nil {
		return nil, toStatus(err)
	}
	s.mu.Lock()
	s.t = t
	s.mu.Unlock()
	_, pid, _ := t.init.current()
	s.cfg.Events.Publish(TopicTaskCreate, &events.TaskCreate{ContainerID: r.ID, Bundle: r.Bundle,
		Rootfs: r.Rootfs, IO: &events.TaskIO{Stdin: r.Stdin, Stdout: r.Stdout, Stderr: r.Stderr, Terminal: r.Terminal},
		Pid: uint32(pid)})
	return &taskapi.CreateTaskResponse{Pid: uint32(pid)}, nil
}

func (s *Service) create(r *taskapi.CreateTaskRequest, opts *options.Options) (t *task, err error) {
	t = &task{id: r.ID, bundle: r.Bundle, execs: map[string]*process{}, coreEventsDone: make(chan struct{})}
	t.init = newProcess("", stdio{Stdin: r.Stdin, Stdout: r.Stdout, Stderr: r.Stderr, Terminal: r.Terminal})
	if len(r.Rootfs) > 0 {
		if err := mountRootfs(r.Bundle, r.Rootfs); err != nil {
			return nil, err
		}
		t.mounted = true
		defer func() {
			if err != nil {
				unmountRootfs(r.Bundle)
			}
		}()
	}
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	sk, err := openSinks(ctx, t.init.io, s.cfg.Namespace, r.ID)
	if err != nil {
		return nil, err
	}
	c, sub, pid, err := startCore(ctx, coreConfig{ID: r.ID, Bundle: r.Bundle, Runtime: opts.BinaryName,
		RuntimeRoot: runtimeRoot(opts.Root, s.cfg.Namespace), Terminal: r.Terminal, Stdin: r.Stdin != "",
		IO: t.init.coreIO(sk), Log: s.cfg.Log})
	if err != nil {
		sk.Close()
		os.RemoveAll(stateRoot(r.Bundle))
		return nil, err
	}
	t.core = c
	t.init.pid, t.init.sinks = pid, sk
	go s.forwardCoreEvents(t, sub)
	go s.waitExit(t, t.init)
	return t, nil
}

// forwardCoreEvents publishes TaskOOM for each OOM kill the core reports,
// until init's exit: the core reports an OOM kill of init right before
// init's exit, so TaskOOM comes before init's TaskExit (waitExit waits
// for coreEventsDone). Exits are published by waitExit.
func (s *Service) forwardCoreEvents(t *task, sub *shim.Subscription) {
	defer close(t.coreEventsDone)
	defer sub.Close()
	for {
		ev, err := sub.Next(context.Background())
		if err != nil {
			return
		}
		switch {
		case ev.Kind == shim.EventOOM:
			s.cfg.Events.Publish(TopicTaskOOM, &events.TaskOOM{ContainerID: t.id})
		case ev.Kind == shim.EventExit && ev.Exec == "":
			return
		}
	}
}

// runtimeRoot is the OCI runtime's --root for namespace ns: root (from
// the runtime options) or containerd's usual /run/containerd/runc, with
// the namespace below it as containerd's runc shim does.
func runtimeRoot(root, ns string) string {
	if root == "" {
		root = "/run/containerd/runc"
	}
	return root + "/" + ns
}

// runcOptions decodes containerd's runc options (BinaryName, Root), the
// options CRI's runtime handlers and ctr pass; any other type is ignored.
func runcOptions(a *anypb.Any) (*options.Options, error) {
	o := &options.Options{}
	if a == nil || a.TypeUrl == "" {
		return o, nil
	}
	if trimTypeURL(a.TypeUrl) != string(proto.MessageName(o)) {
		return o, nil
	}
	if err := proto.Unmarshal(a.Value, o); err != nil {
		return nil, fmt.Errorf("runtime options: %w", err)
	}
	return o, nil
}

func trimTypeURL(u string) string {
	for i := len(u) - 1; i >= 0; i-- {
		if u[i] == '/' {
			return u[i+1:]
		}
	}
	return u
}

// waitExit waits for the process's exit record, lets its output reach
// containerd, and publishes TaskExit. Init's exit is published after
// the exits of its exec'd processes.
func (s *Service) waitExit(t *task, p *process) {
	rec, err := t.core.Wait(context.Background(), p.execID)
	if err != nil {
		rec = &store.ExitRecord{Status: store.UnknownStatus, ExitedAt: time.Now().UTC(), Reason: err.Error()}
		s.cfg.Log.WithError(err).WithField("exec", p.execID).Error("wait for exit")
	}
	p.mu.Lock()
	starting := p.starting
	p.mu.Unlock()
	if starting {
		<-p.startDone
	}
	p.mu.Lock()
	if p.sinks != nil {
		p.sinks.Close() // the core has drained the output into them
	}
	if p.stdin != nil {
		p.stdin.Close()
	}
	p.mu.Unlock()
	if p.execID == "" {
		t.waitExecs(ioFlushTimeout)
		select {
		case <-t.coreEventsDone:
		case <-time.After(ioFlushTimeout):
			s.cfg.Log.Warn("the core's events up to init's exit did not arrive: an OOM kill may be reported late or not at all")
		}
	}
	p.mu.Lock()
	p.exit = rec
	pid := p.pid
	p.mu.Unlock()
	id := t.id
	if p.execID != "" {
		id = p.execID
	}
	s.cfg.Events.Publish(TopicTaskExit, &events.TaskExit{ContainerID: t.id, ID: id, Pid: uint32(pid),
		ExitStatus: uint32(rec.Status), ExitedAt: timestamppb.New(rec.ExitedAt)})
	close(p.exited)
}

// waitExecs waits, at most d, for every started exec to have exited.
func (t *task) waitExecs(d time.Duration) {
	deadline := time.After(d)
	t.mu.Lock()
	var ps []*process
	for _, p := range t.execs {
		ps = append(ps, p)
	}
	t.mu.Unlock()
	for _, p := range ps {
		if started, _, _ := p.current(); !started {
			continue
		}
		select {
		case <-p.exited:
		case <-deadline:
			return
		}
	}
}

// Start starts init, or an exec'd process.
func (s *Service) Start(ctx context.Context, r *taskapi.StartRequest) (*taskapi.StartResponse, error) {
	t, err := s.getTask(r.ID)
	if err != nil {
		return nil, err
	}
	if r.ExecID != "" {
		return s.startExec(ctx, t, r.ExecID)
	}
	t.init.mu.Lock()
	t.init.starting = true
	t.init.mu.Unlock()
	defer t.init.startEnded()
	if err := t.core.Start(ctx); err != nil {
		return nil, toStatus(err)
	}
	t.init.mu.Lock()
	t.init.started = true
	pid := t.init.pid
	t.init.mu.Unlock()
	s.cfg.Events.Publish(TopicTaskStart, &events.TaskStart{ContainerID: t.id, Pid: uint32(pid)})
	return &taskapi.StartResponse{Pid: uint32(pid)}, nil
}

func (s *Service) startExec(ctx context.Context, t *task, execID string) (*taskapi.StartResponse, error) {
	p, err := t.process(execID)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	if p.started {
		p.mu.Unlock()
		return nil, status.Errorf(codes.FailedPrecondition, "exec %s: already started", execID)
	}
	p.started = true
	p.mu.Unlock()
	sk, err := openSinks(ctx, p.io, s.cfg.Namespace, t.id)
	if err != nil {
		return nil, toStatus(err)
	}
	pid, _, err := t.core.Exec(context.WithoutCancel(ctx), shim.ExecConfig{ID: execID, Process: *p.spec,
		Terminal: p.io.Terminal, Stdin: p.io.Stdin != "", IO: p.coreIO(sk)})
	if err != nil {
		sk.Close()
		t.mu.Lock()
		delete(t.execs, execID) // never ran: containerd may add it again
		t.mu.Unlock()
		return nil, toStatus(err)
	}
	p.mu.Lock()
	p.pid, p.sinks = pid, sk
	p.mu.Unlock()
	s.cfg.Events.Publish(TopicTaskExecStarted, &events.TaskExecStarted{ContainerID: t.id, ExecID: execID, Pid: uint32(pid)})
	go s.waitExit(t, p)
	return &taskapi.StartResponse{Pid: uint32(pid)}, nil
}

// Exec registers an exec'd process; Start runs it.
func (s *Service) Exec(ctx context.Context, r *taskapi.ExecProcessRequest) (*emptypb.Empty, error) {
	t, err := s.getTask(r.ID)
	if err != nil {
		return nil, err
	}
	if err := ids.ValidID(r.ExecID); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "exec id %q: %v", r.ExecID, err)
	}
	var spec specs.Process
	if r.Spec == nil || json.Unmarshal(r.Spec.Value, &spec) != nil || len(spec.Args) == 0 {
		return nil, status.Errorf(codes.InvalidArgument, "exec %s: the process spec is missing or has no args", r.ExecID)
	}
	if _, _, exit := t.init.current(); exit != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "exec %s: task %s has exited", r.ExecID, t.id)
	}
	p := newProcess(r.ExecID, stdio{Stdin: r.Stdin, Stdout: r.Stdout, Stderr: r.Stderr, Terminal: r.Terminal})
	p.spec = &spec
	t.mu.Lock()
	if _, ok := t.execs[r.ExecID]; ok {
		t.mu.Unlock()
		return nil, status.Errorf(codes.AlreadyExists, "exec %s: already exists", r.ExecID)
	}
	t.execs[r.ExecID] = p
	t.mu.Unlock()
	s.cfg.Events.Publish(TopicTaskExecAdded, &events.TaskExecAdded{ContainerID: t.id, ExecID: r.ExecID})
	return &emptypb.Empty{}, nil
}

// State reports init or an exec'd process.
func (s *Service) State(ctx context.Context, r *taskapi.StateRequest) (*taskapi.StateResponse, error) {
	t, p, err := s.getProcess(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	resp := &taskapi.StateResponse{ID: r.ID, ExecID: r.ExecID, Bundle: t.bundle, Stdin: p.io.Stdin,
		Stdout: p.io.Stdout, Stderr: p.io.Stderr, Terminal: p.io.Terminal}
	started, pid, exit := p.current()
	resp.Pid = uint32(pid)
	switch {
	case exit != nil:
		resp.Status = tasktypes.Status_STOPPED
		resp.ExitStatus, resp.ExitedAt = uint32(exit.Status), timestamppb.New(exit.ExitedAt)
		return resp, nil
	case r.ExecID != "" && !started:
		resp.Status = tasktypes.Status_CREATED
		return resp, nil
	}
	st := t.core.State()
	code, exit := st.Status, st.Exit
	if r.ExecID != "" {
		for _, e := range st.Execs {
			if e.ID == r.ExecID {
				code, exit = e.Status, e.Exit
			}
		}
	}
	resp.Status = statusOf(code)
	if resp.Status == tasktypes.Status_STOPPED && exit != nil {
		// Recorded by the core; TaskExit is on its way.
		resp.ExitStatus, resp.ExitedAt = uint32(exit.Status), timestamppb.New(exit.ExitedAt)
	}
	return resp, nil
}

// statusOf maps the core's status names to containerd's.
func statusOf(s string) tasktypes.Status {
	switch s {
	case shim.StatusCreated, shim.StatusCreating:
		return tasktypes.Status_CREATED
	case shim.StatusRunning:
		return tasktypes.Status_RUNNING
	case shim.StatusPaused:
		return tasktypes.Status_PAUSED
	case shim.StatusStopped:
		return tasktypes.Status_STOPPED
	}
	return tasktypes.Status_UNKNOWN
}

// Wait blocks until the process has exited and its TaskExit is out.
func (s *Service) Wait(ctx context.Context, r *taskapi.WaitRequest) (*taskapi.WaitResponse, error) {
	_, p, err := s.getProcess(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	select {
	case <-p.exited:
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	_, _, exit := p.current()
	return &taskapi.WaitResponse{ExitStatus: uint32(exit.Status), ExitedAt: timestamppb.New(exit.ExitedAt)}, nil
}

// Kill signals init (all of the task's processes with All) or an exec'd
// process. Signalling a process that has exited is NotFound, as
// containerd expects.
func (s *Service) Kill(ctx context.Context, r *taskapi.KillRequest) (*emptypb.Empty, error) {
	t, p, err := s.getProcess(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	if started, _, exit := p.current(); exit != nil || (r.ExecID != "" && !started) {
		return nil, status.Errorf(codes.NotFound, "process %s: not running", processName(t, r.ExecID))
	}
	if r.Signal == 0 || r.Signal > 64 {
		return nil, status.Errorf(codes.InvalidArgument, "signal %d is out of range 1-64", r.Signal)
	}
	err = t.core.Kill(ctx, r.ExecID, syscall.Signal(r.Signal), r.All)
	if errors.Is(err, shim.ErrNotRunning) || errors.Is(err, shim.ErrNotFound) {
		return nil, status.Errorf(codes.NotFound, "process %s: %v", processName(t, r.ExecID), err)
	}
	if err != nil {
		return nil, toStatus(err)
	}
	return &emptypb.Empty{}, nil
}

func processName(t *task, execID string) string {
	if execID == "" {
		return t.id
	}
	return t.id + "/" + execID
}

// Delete removes an exec'd process that has exited, or the task: the
// container (a created one is killed first), its rootfs mounts and
// Tether's state folder. It publishes TaskDelete.
func (s *Service) Delete(ctx context.Context, r *taskapi.DeleteRequest) (*taskapi.DeleteResponse, error) {
	t, err := s.getTask(r.ID)
	if err != nil {
		return nil, err
	}
	if r.ExecID != "" {
		return s.deleteExec(t, r.ExecID)
	}
	ctx = context.WithoutCancel(ctx)
	started, _, exit := t.init.current()
	if exit == nil && started {
		if st := t.core.State(); st.Status != shim.StatusStopped {
			return nil, status.Errorf(codes.FailedPrecondition, "task %s is %s: kill it first", t.id, st.Status)
		}
	}
	if err := t.core.Delete(ctx, !started); err != nil {
		return nil, toStatus(err)
	}
	select {
	case <-t.init.exited:
	case <-time.After(deleteTimeout):
	}
	t.core.Close()
	var errs []error
	if t.mounted {
		errs = append(errs, unmountRootfs(t.bundle))
	}
	errs = append(errs, os.RemoveAll(stateRoot(t.bundle)))
	t.mu.Lock()
	t.deleted = true
	t.mu.Unlock()
	s.mu.Lock()
	s.t = nil
	s.mu.Unlock()
	_, pid, exit := t.init.current()
	resp := &taskapi.DeleteResponse{Pid: uint32(pid)}
	if exit != nil {
		resp.ExitStatus, resp.ExitedAt = uint32(exit.Status), timestamppb.New(exit.ExitedAt)
	}
	s.cfg.Events.Publish(TopicTaskDelete, &events.TaskDelete{ContainerID: t.id, Pid: resp.Pid,
		ExitStatus: resp.ExitStatus, ExitedAt: resp.ExitedAt})
	if err := errors.Join(errs...); err != nil {
		s.cfg.Log.WithError(err).Warn("delete: clean-up incomplete")
	}
	return resp, nil
}

func (s *Service) deleteExec(t *task, execID string) (*taskapi.DeleteResponse, error) {
	p, err := t.process(execID)
	if err != nil {
		return nil, err
	}
	started, pid, exit := p.current()
	if started && exit == nil {
		return nil, status.Errorf(codes.FailedPrecondition, "exec %s is running: kill it first", execID)
	}
	t.mu.Lock()
	delete(t.execs, execID)
	t.mu.Unlock()
	resp := &taskapi.DeleteResponse{Pid: uint32(pid)}
	if exit != nil {
		resp.ExitStatus, resp.ExitedAt = uint32(exit.Status), timestamppb.New(exit.ExitedAt)
	}
	return resp, nil
}

// Pause freezes the task.
func (s *Service) Pause(ctx context.Context, r *taskapi.PauseRequest) (*emptypb.Empty, error) {
	return s.pause(ctx, r.ID, true)
}

// Resume thaws the task.
func (s *Service) Resume(ctx context.Context, r *taskapi.ResumeRequest) (*emptypb.Empty, error) {
	return s.pause(ctx, r.ID, false)
}

func (s *Service) pause(ctx context.Context, id string, pause bool) (*emptypb.Empty, error) {
	t, err := s.getTask(id)
	if err != nil {
		return nil, err
	}
	op := t.core.Resume
	if pause {
		op = t.core.Pause
	}
	if err := op(ctx); err != nil {
		return nil, toStatus(err)
	}
	if pause {
		s.cfg.Events.Publish(TopicTaskPaused, &events.TaskPaused{ContainerID: id})
	} else {
		s.cfg.Events.Publish(TopicTaskResumed, &events.TaskResumed{ContainerID: id})
	}
	return &emptypb.Empty{}, nil
}

// CloseIO ends the process's input.
func (s *Service) CloseIO(ctx context.Context, r *taskapi.CloseIORequest) (*emptypb.Empty, error) {
	t, p, err := s.getProcess(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	if !r.Stdin {
		return &emptypb.Empty{}, nil
	}
	if p.stdin != nil {
		p.stdin.Close()
	}
	if err := t.core.CloseStdin(r.ExecID); err != nil && !errors.Is(err, shim.ErrNotRunning) {
		return nil, toStatus(err)
	}
	return &emptypb.Empty{}, nil
}

// ResizePty sets the terminal size of init or an exec'd process.
func (s *Service) ResizePty(ctx context.Context, r *taskapi.ResizePtyRequest) (*emptypb.Empty, error) {
	t, err := s.getTask(r.ID)
	if err != nil {
		return nil, err
	}
	if r.Width > 0xffff || r.Height > 0xffff {
		return nil, status.Errorf(codes.InvalidArgument, "terminal size %dx%d is too large", r.Width, r.Height)
	}
	if err := t.core.Resize(r.ExecID, uint16(r.Width), uint16(r.Height)); err != nil {
		return nil, toStatus(err)
	}
	return &emptypb.Empty{}, nil
}

// Pids lists the task's processes (from its cgroup), exec'd ones named.
func (s *Service) Pids(ctx context.Context, r *taskapi.PidsRequest) (*taskapi.PidsResponse, error) {
	t, err := s.getTask(r.ID)
	if err != nil {
		return nil, err
	}
	pids, err := t.core.Pids(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	st := t.core.State()
	execOf := map[int]string{}
	for _, e := range st.Execs {
		if e.Status == shim.StatusRunning || e.Status == shim.StatusPaused {
			execOf[e.Pid] = e.ID
		}
	}
	resp := &taskapi.PidsResponse{}
	for _, pid := range pids {
		pi := &tasktypes.ProcessInfo{Pid: uint32(pid)}
		if id, ok := execOf[pid]; ok {
			b, _ := proto.Marshal(&options.ProcessDetails{ExecID: id})
			pi.Info = &anypb.Any{TypeUrl: string(proto.MessageName(&options.ProcessDetails{})), Value: b}
		}
		resp.Processes = append(resp.Processes, pi)
	}
	return resp, nil
}

// Update changes the task's resources through the core (the OCI
// runtime's update); only the fields set change. containerd sends them
// as specs.LinuxResources in JSON, under the type URL its client
// registers for them.
func (s *Service) Update(ctx context.Context, r *taskapi.UpdateTaskRequest) (*emptypb.Empty, error) {
	t, err := s.getTask(r.ID)
	if err != nil {
		return nil, err
	}
	res, err := linuxResources(r.Resources)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "update %s: %v", r.ID, err)
	}
	if err := t.core.Update(ctx, res); err != nil {
		return nil, toStatus(err)
	}
	return &emptypb.Empty{}, nil
}

// linuxResourcesURL is the type URL containerd's client registers for
// specs.LinuxResources (marshalled as JSON).
const linuxResourcesURL = "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources"

// linuxResources decodes Update's resources.
func linuxResources(a *anypb.Any) (*specs.LinuxResources, error) {
	if a == nil || len(a.Value) == 0 {
		return nil, errors.New("no resources given: pass the limits to change")
	}
	if u := a.TypeUrl; u != linuxResourcesURL && trimTypeURL(u) != "LinuxResources" {
		return nil, fmt.Errorf("resources of type %q: Tether takes %s", u, linuxResourcesURL)
	}
	var res specs.LinuxResources
	if err := json.Unmarshal(a.Value, &res); err != nil {
		return nil, fmt.Errorf("resources are not LinuxResources JSON: %w", err)
	}
	return &res, nil
}

// Checkpoint dumps the task with CRIU through the core into r.Path
// (containerd's image folder for it). Options (runc's CheckpointOptions)
// are honoured for Exit, ImagePath and WorkPath: the rest are CRIU details Tether sets
// itself, and a checkpoint of a task with a terminal or running exec'd
// processes is refused by the core.
func (s *Service) Checkpoint(ctx context.Context, r *taskapi.CheckpointTaskRequest) (*emptypb.Empty, error) {
	t, err := s.getTask(r.ID)
	if err != nil {
		return nil, err
	}
	opts, err := checkpointOptions(r.Options)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "checkpoint %s: %v", r.ID, err)
	}
	path := r.Path
	if path == "" {
		path = opts.ImagePath
	}
	if path == "" {
		return nil, status.Errorf(codes.InvalidArgument, "checkpoint %s: no image path given", r.ID)
	}
	cfg := shim.CheckpointConfig{ImagePath: path, WorkPath: opts.WorkPath, LeaveRunning: !opts.Exit}
	if err := t.core.Checkpoint(ctx, cfg); err != nil {
		return nil, toStatus(err)
	}
	return &emptypb.Empty{}, nil
}

// checkpointOptions decodes runc's CheckpointOptions; another type, or
// none, means containerd's defaults (leave the task running).
func checkpointOptions(a *anypb.Any) (*options.CheckpointOptions, error) {
	o := &options.CheckpointOptions{}
	if a == nil || trimTypeURL(a.TypeUrl) != string(proto.MessageName(o)) {
		return o, nil
	}
	if err := proto.Unmarshal(a.Value, o); err != nil {
		return nil, fmt.Errorf("checkpoint options: %w", err)
	}
	return o, nil
}

// Connect tells containerd the shim's and the task's pids.
func (s *Service) Connect(ctx context.Context, r *taskapi.ConnectRequest) (*taskapi.ConnectResponse, error) {
	resp := &taskapi.ConnectResponse{ShimPid: uint32(os.Getpid()), Version: Version}
	if t, err := s.getTask(r.ID); err == nil {
		_, pid, _ := t.init.current()
		resp.TaskPid = uint32(pid)
	}
	return resp, nil
}

// Version is what Connect reports as the shim's version.
const Version = "tether-v1"

// Shutdown ends the shim once no task is left (or at once with Now).
func (s *Service) Shutdown(ctx context.Context, r *taskapi.ShutdownRequest) (*emptypb.Empty, error) {
	s.mu.Lock()
	busy := s.t != nil
	s.mu.Unlock()
	if busy && !r.Now {
		return &emptypb.Empty{}, nil
	}
	s.shutdownOnce.Do(func() {
		if s.cfg.Shutdown != nil {
			go s.cfg.Shutdown()
		}
	})
	return &emptypb.Empty{}, nil
}

// toStatus turns a core error into a ttrpc status containerd maps to its
// errdefs.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	code := codes.Unknown
	switch {
	case errors.Is(err, shim.ErrNotFound):
		code = codes.NotFound
	case errors.Is(err, shim.ErrExists):
		code = codes.AlreadyExists
	case errors.Is(err, shim.ErrNotRunning), errors.Is(err, shim.ErrRunning):
		code = codes.FailedPrecondition
	case errors.Is(err, shim.ErrInvalid), errors.Is(err, shim.ErrCommandNotFound),
		errors.Is(err, shim.ErrCommandNotExecutable):
		code = codes.InvalidArgument
	case shim.Creating(err):
		code = codes.Unavailable
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	}
	return status.Error(code, err.Error())
}

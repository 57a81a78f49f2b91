package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	taskapi "github.com/containerd/containerd/api/runtime/task/v2"
	"github.com/containerd/ttrpc"
	"github.com/sirupsen/logrus"
	"github.com/tether-run/tether/internal/gotune"
	"github.com/tether-run/tether/shim/containerd"
)

// eventFlushTimeout is how long a shim that is shutting down still tries
// to deliver its last events.
const eventFlushTimeout = 5 * time.Second

// serve is the long-lived shim: the ttrpc task service on the socket
// start handed down as fd 3.
func serve(f *flags) error {
	gotune.Apply() // start set GOMAXPROCS=1 and GOGC; the OCI runtime starts with Go's defaults
	signal.Ignore(syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGPIPE)
	logger := logrus.New()
	logger.SetOutput(os.Stderr) // the bundle's shim log, opened by start
	logger.SetFormatter(&logrus.JSONFormatter{})
	if f.debug {
		logger.SetLevel(logrus.DebugLevel)
	}
	log := logger.WithFields(logrus.Fields{"id": f.id, "namespace": f.namespace, "shim_pid": os.Getpid()})
	syscall.CloseOnExec(3)
	lf := os.NewFile(3, "socket")
	ln, err := net.FileListener(lf)
	lf.Close()
	if err != nil {
		return fmt.Errorf("socket from start (fd 3): %w", err)
	}
	path := ln.Addr().String()
	pub := containerd.NewPublisher(os.Getenv("TTRPC_ADDRESS"), f.namespace, log)
	done := make(chan struct{})
	svc := containerd.New(containerd.Config{Namespace: f.namespace, ID: f.id, Events: pub, Log: log,
		Shutdown: func() { close(done) }})
	server, err := ttrpc.NewServer(ttrpc.WithServerHandshaker(ttrpc.UnixSocketRequireSameUser()))
	if err != nil {
		return err
	}
	taskapi.RegisterTTRPCTaskService(server, svc)
	go func() {
		if err := server.Serve(context.Background(), ln); err != nil && err != ttrpc.ErrServerClosed {
			log.WithError(err).Error("ttrpc server")
		}
	}()
	log.Info("serving")
	<-done
	if left := pub.Close(eventFlushTimeout); left > 0 {
		log.WithField("events", left).Warn("shut down with events undelivered")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	server.Shutdown(ctx) // lets the Shutdown reply go out
	cancel()
	server.Close()
	os.Remove(path)
	log.Info("shut down")
	return nil
}

package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/tether-run/tether/shim/containerd"
	"google.golang.org/protobuf/proto"
)

// deleteTimeout keeps delete within containerd's patience (5 s).
const deleteTimeout = 4 * time.Second

// deleteTask is the binary's delete: it prints a protobuf DeleteResponse.
// A clean-up that was only partly done is reported on stderr, but the
// response (the exit) is still printed, so containerd can go on.
func deleteTask(f *flags) error {
	ctx, cancel := context.WithTimeout(context.Background(), deleteTimeout)
	defer cancel()
	resp, err := containerd.Cleanup(ctx, f.bundle, f.id)
	if resp == nil {
		return err
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "containerd-shim-tether-v1: delete:", err)
	}
	b, merr := proto.Marshal(resp)
	if merr != nil {
		return merr
	}
	_, werr := os.Stdout.Write(b)
	return werr
}

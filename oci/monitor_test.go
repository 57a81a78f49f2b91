package oci

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

func TestDirectMonitorStatus(t *testing.T) {
	tests := []struct {
		name   string
		script string
		want   int
	}{
		{"success", "exit 0", 0},
		{"exit code", "exit 7", 7},
		{"SIGTERM", "kill -TERM $$", 128 + 15},
		{"SIGKILL", "kill -KILL $$", 128 + 9},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wait, err := DirectMonitor{}.Start(exec.Command("/bin/sh", "-c", tt.script))
			if err != nil {
				t.Fatal(err)
			}
			got, err := wait()
			if err != nil {
				t.Fatalf("wait: %v", err)
			}
			if got != tt.want {
				t.Errorf("status = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestDirectMonitorStartError(t *testing.T) {
	if _, err := (DirectMonitor{}).Start(exec.Command("/nonexistent/binary")); err == nil {
		t.Fatal("Start of a missing binary succeeded")
	}
}

func TestReadPidFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name    string
		path    string
		want    int
		wantErr bool
	}{
		{"plain", write("plain", "1234"), 1234, false},
		{"trailing newline", write("nl", "42\n"), 42, false},
		{"garbage", write("garbage", "abc"), 0, true},
		{"zero", write("zero", "0"), 0, true},
		{"negative", write("neg", "-5"), 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadPidFile(tt.path)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("ReadPidFile = %d, %v; want %d, err=%v", got, err, tt.want, tt.wantErr)
			}
		})
	}
	t.Run("missing", func(t *testing.T) {
		if _, err := ReadPidFile(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("err = %v, want fs.ErrNotExist", err)
		}
	})
	t.Run("filled later", func(t *testing.T) {
		p := write("later", "")
		go func() {
			time.Sleep(100 * time.Millisecond)
			os.WriteFile(p, []byte("777"), 0o600)
		}()
		if got, err := ReadPidFile(p); err != nil || got != 777 {
			t.Errorf("ReadPidFile = %d, %v; want 777", got, err)
		}
	})
	t.Run("stays empty", func(t *testing.T) {
		if _, err := ReadPidFile(write("empty", "")); !errors.Is(err, errEmptyPidFile) {
			t.Errorf("err = %v, want errEmptyPidFile", err)
		}
	})
}

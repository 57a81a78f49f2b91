package bundle

import (
	"slices"
	"strings"
	"testing"
)

func TestMergeEnv(t *testing.T) {
	t.Parallel()
	base := []string{"PATH=/bin", "TERM=xterm"}
	for _, tc := range []struct {
		name  string
		extra []string
		want  []string
	}{
		{"nothing added", nil, base},
		{"new keys appended in order", []string{"B=2", "A=1"}, []string{"PATH=/bin", "TERM=xterm", "B=2", "A=1"}},
		{"default replaced in place", []string{"PATH=/opt/bin"}, []string{"PATH=/opt/bin", "TERM=xterm"}},
		{"later extra wins", []string{"A=1", "A=2"}, []string{"PATH=/bin", "TERM=xterm", "A=2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := mergeEnv(base, tc.extra)
			if !slices.Equal(got, tc.want) {
				t.Errorf("mergeEnv = %q, want %q", got, tc.want)
			}
		})
	}
	if base[0] != "PATH=/bin" {
		t.Errorf("mergeEnv changed its base: %q", base)
	}
}

func TestParseApplets(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		out     string
		want    []string
		wantErr string
	}{
		{"plain list", "sh\ncat\nsleep\n", []string{"sh", "cat", "sleep"}, ""},
		{"busybox and repeats dropped", "busybox\nsh\nsh\nls\n", []string{"sh", "ls"}, ""},
		{"slash in a name", "sh\n../x\n", nil, "bad applet name"},
		{"dot-dot name", "sh\n..\n", nil, "bad applet name"},
		{"no sh", "cat\n", nil, "no sh applet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseApplets([]byte(tc.out))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("parseApplets = %q, %v; want error %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Errorf("parseApplets = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

package gotune

import (
	"runtime/metrics"
	"slices"
	"strconv"
	"testing"
)

func TestRuntimeEnv(t *testing.T) {
	gogc := "GOGC=" + strconv.Itoa(GOGC)
	for _, tc := range []struct {
		name     string
		in, want []string
	}{
		{"empty", nil, []string{"GOGC=50", "GOMAXPROCS=1"}},
		{"kept", []string{"PATH=/bin", "HOME=/root"}, []string{"GOGC=50", "GOMAXPROCS=1", "HOME=/root", "PATH=/bin"}},
		{"the manager's own settings replaced", []string{"GOMAXPROCS=8", "GOGC=off", "X=1"}, []string{"GOGC=50", "GOMAXPROCS=1", "X=1"}},
		{"a prefix is not a match", []string{"GOGCX=1"}, []string{"GOGC=50", "GOGCX=1", "GOMAXPROCS=1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Env(tc.in)
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("Env(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if !slices.Contains(got, gogc) {
				t.Fatalf("Env(%q) lacks %s", tc.in, gogc)
			}
		})
	}
}

// TestAllocsMetric: TrimWhenIdle silently does nothing without this
// metric, so a Go release that renames it must fail here.
func TestAllocsMetric(t *testing.T) {
	for _, d := range metrics.All() {
		if d.Name == allocsMetric {
			if d.Kind != metrics.KindUint64 || !d.Cumulative {
				t.Fatalf("%s is %v, cumulative %v: want a cumulative uint64", allocsMetric, d.Kind, d.Cumulative)
			}
			return
		}
	}
	t.Fatalf("the runtime has no metric %s", allocsMetric)
}

package mountinfo

import (
	"slices"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	text := "22 1 0:21 / /tmp rw,nosuid shared:5 - tmpfs tmpfs rw,size=100k\n" +
		"90 22 0:21 /a\\040b/rootfs /run/c\\134d rw master:5 propagate_from:2 - tmpfs tmpfs rw\n" +
		"31 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
	ms, err := Parse(text)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 3 || ms[0].Point != "/tmp" || ms[1].Root != "/a b/rootfs" || ms[1].Point != `/run/c\d` ||
		ms[1].Dev != "0:21" || ms[2].FSType != "cgroup" || !slices.Equal(ms[2].Opts, []string{"rw", "cpu", "cpuacct"}) {
		t.Fatalf("parsed %+v", ms)
	}
	for _, bad := range []string{"22 1 0:21 / /tmp\n", "22 1 0:21 / /tmp rw shared:5 -\n"} {
		if _, err := Parse(bad); err == nil || !strings.Contains(err.Error(), "malformed") {
			t.Errorf("Parse(%q): %v, want a malformed-line error", bad, err)
		}
	}
}

// TestParseTypes: only the types asked for, in file order; a malformed
// line is an error even when its type would not be kept.
func TestParseTypes(t *testing.T) {
	text := "22 1 0:21 / /tmp rw - tmpfs tmpfs rw\n" +
		"31 25 0:27 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n" +
		"32 25 0:28 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n" +
		"33 25 0:29 / /sys/fs/cgroupx rw - cgroupx none rw\n"
	ms, err := ParseTypes(text, "cgroup", "cgroup2")
	if err != nil {
		t.Fatal(err)
	}
	var points []string
	for _, m := range ms {
		points = append(points, m.Point)
	}
	if want := []string{"/sys/fs/cgroup/cpu", "/sys/fs/cgroup/unified"}; !slices.Equal(points, want) {
		t.Errorf("ParseTypes kept %v, want %v", points, want)
	}
	if all, err := ParseTypes(text); err != nil || len(all) != 4 {
		t.Errorf("ParseTypes with no type: %d mounts (%v), want all 4", len(all), err)
	}
	if _, err := ParseTypes(text+"34 25 0:30 / /x rw no separator\n", "cgroup"); err == nil || !strings.Contains(err.Error(), "no separator") {
		t.Errorf("malformed line among skipped types: %v, want an error naming it", err)
	}
}

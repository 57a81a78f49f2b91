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

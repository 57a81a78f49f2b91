package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// runCLI runs one command line in-process.
func runCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return out.String(), errb.String(), code
}

// allCommands lists every command of the tree but the root.
func allCommands() []*cobra.Command {
	var cmds []*cobra.Command
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			cmds = append(cmds, sub)
			walk(sub)
		}
	}
	walk(docsRoot())
	return cmds
}

// TestHelpEveryCommand: --help and 'tether help CMD' print the summary,
// the usage, every flag with its description (and a non-zero default),
// and an example, and exit 0.
func TestHelpEveryCommand(t *testing.T) {
	for _, c := range allCommands() {
		path := strings.Fields(c.CommandPath())[1:]
		t.Run(strings.Join(path, "_"), func(t *testing.T) {
			if c.Short == "" || c.Example == "" {
				t.Fatalf("%s has no summary or no example", c.CommandPath())
			}
			for _, form := range [][]string{append(append([]string{}, path...), "--help"), append([]string{"help"}, path...)} {
				out, errOut, code := runCLI(t, form...)
				if code != 0 || errOut != "" {
					t.Fatalf("tether %v: exit %d, stderr %q", form, code, errOut)
				}
				for _, want := range []string{c.Short, "Usage:", "Examples:", strings.TrimSpace(strings.Split(c.Example, "\n")[0])} {
					if !strings.Contains(out, want) && !(want == c.Short && c.Long != "") {
						t.Errorf("tether %v does not show %q:\n%s", form, want, out)
					}
				}
				c.Flags().VisitAll(func(f *pflag.Flag) {
					if !strings.Contains(out, "--"+f.Name) || !strings.Contains(out, f.Usage) {
						t.Errorf("tether %v does not describe --%s", form, f.Name)
					}
					if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "[]" &&
						!strings.Contains(out, "(default "+f.DefValue) && !strings.Contains(out, `(default "`+f.DefValue+`"`) {
						t.Errorf("tether %v does not show the default of --%s (%s)", form, f.Name, f.DefValue)
					}
				})
			}
		})
	}
}

// TestSuggestions: a mistyped command or flag names the nearest one, on
// one line, with exit 2.
func TestSuggestions(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"delet", "x"}, `did you mean "delete"?`},
		{[]string{"isnpect", "x"}, `did you mean "inspect"?`},
		{[]string{"strat", "x"}, `did you mean "start"?`},
		{[]string{"versoin"}, `did you mean "version"?`},
		{[]string{"delete", "--forse", "x"}, "did you mean --force?"},
		{[]string{"logs", "--folow", "x"}, "did you mean --follow?"},
		{[]string{"kill", "--signl", "KILL", "x"}, "did you mean --signal?"},
		{[]string{"list", "--fromat", "json"}, "did you mean --format?"},
		{[]string{"run", "-rm", "x"}, "long flags take two dashes: --rm"},
		{[]string{"--roto", "/x", "list"}, "did you mean --root?"},
	} {
		t.Run(strings.Join(tc.args, "_"), func(t *testing.T) {
			out, errOut, code := runCLI(t, tc.args...)
			if code != 2 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "tether") {
				t.Fatalf("tether %v: exit %d, stdout %q, stderr %q; want exit 2 and one line", tc.args, code, out, errOut)
			}
			if !strings.Contains(errOut, tc.want) {
				t.Errorf("tether %v: %q does not say %q", tc.args, errOut, tc.want)
			}
		})
	}
}

// TestAliases: each docker verb resolves to its command.
func TestAliases(t *testing.T) {
	root := docsRoot()
	for alias, name := range map[string]string{"rm": "delete", "unpause": "resume"} {
		c, _, err := root.Find([]string{alias})
		if err != nil || c.Name() != name {
			t.Errorf("%s resolves to %v (%v), want %s", alias, c.Name(), err, name)
		}
	}
	for _, name := range []string{"ps", "inspect", "version", "completion", "help"} {
		if c, _, err := root.Find([]string{name}); err != nil || c.Name() != name {
			t.Errorf("no command %s", name)
		}
	}
}

// TestDocsCurrent: docs/cli is what 'make docs' writes from today's
// commands.
func TestDocsCurrent(t *testing.T) {
	t.Setenv("TETHER_ROOT", "")
	t.Setenv("TETHER_RUNTIME", "")
	dir := filepath.Join("..", "..", "docs", "cli")
	pages := renderDocs(docsRoot())
	have, _ := filepath.Glob(filepath.Join(dir, "tether*.md"))
	for _, f := range have {
		if _, ok := pages[filepath.Base(f)]; !ok {
			t.Errorf("%s documents no command any more: run 'make docs'", f)
		}
	}
	for name, data := range pages {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || string(got) != string(data)+"\n" {
			t.Errorf("%s is not current (%v): run 'make docs' and commit docs/cli", name, err)
		}
	}
}

// TestSplitCommand: run and exec take the command after the ID with or
// without --, and today's flags after the ID up to --.
func TestSplitCommand(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		id      string
		command []string
		detach  bool
		bad     bool
	}{
		{args: []string{"c1", "--", "ls", "-l"}, id: "c1", command: []string{"ls", "-l"}},
		{args: []string{"c1", "ls", "-l"}, id: "c1", command: []string{"ls", "-l"}},
		{args: []string{"c1", "sh", "-c", "a -- b"}, id: "c1", command: []string{"sh", "-c", "a -- b"}},
		{args: []string{"c1", "-d", "--", "sleep", "1"}, id: "c1", command: []string{"sleep", "1"}, detach: true},
		{args: []string{"c1", "-d"}, id: "c1", detach: true},
		{args: []string{"c1"}, id: "c1"},
		{args: []string{"c1", "-d", "x", "--", "y"}, bad: true},
		{args: []string{"c1", "--nope", "--", "y"}, bad: true},
		{args: []string{}, bad: true},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var detach bool
			cmd := &cobra.Command{Use: "x"}
			cmd.Flags().BoolVarP(&detach, "detach", "d", false, "")
			cmd.Flags().SetInterspersed(false)
			id, command, err := splitCommand(cmd, tc.args, true)
			if (err != nil) != tc.bad {
				t.Fatalf("err %v, want error %v", err, tc.bad)
			}
			if tc.bad {
				return
			}
			if id != tc.id || strings.Join(command, "|") != strings.Join(tc.command, "|") || detach != tc.detach {
				t.Fatalf("got %q %q detach=%v, want %q %q %v", id, command, detach, tc.id, tc.command, tc.detach)
			}
		})
	}
}

func TestParseContainerFlags(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "rootfs", "etc"), 0o755)
	os.WriteFile(filepath.Join(dir, "rootfs", "etc", "passwd"), []byte("root:x:0:0::/:/bin/sh\napp:x:1000:1001::/:/bin/sh\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "rootfs", "etc", "group"), []byte("root:x:0:\nstaff:x:50:\n"), 0o644)
	rootfs := filepath.Join(dir, "rootfs")
	for _, tc := range []struct {
		in, rootfs string
		uid, gid   uint32
		bad        bool
	}{
		{"1000", "", 1000, 1000, false},
		{"1000:2000", "", 1000, 2000, false},
		{"nobody", "", 65534, 65534, false},
		{"app", rootfs, 1000, 1001, false},
		{"app:staff", rootfs, 1000, 50, false},
		{"1000", rootfs, 1000, 1001, false},
		{"ghost", rootfs, 0, 0, true},
		{"ghost", "", 0, 0, true},
		{"1:x", "", 0, 0, true},
	} {
		u, err := parseUser(tc.in, tc.rootfs)
		if (err != nil) != tc.bad || (!tc.bad && (u.UID != tc.uid || u.GID != tc.gid)) {
			t.Errorf("parseUser(%q, %q) = %+v, %v", tc.in, tc.rootfs, u, err)
		}
	}
	m, err := parseVolumes([]string{dir + ":/data:ro", dir + ":/rw"})
	if err != nil || len(m) != 2 || m[0].Destination != "/data" || m[0].Options[len(m[0].Options)-1] != "ro" || m[1].Source != dir {
		t.Errorf("parseVolumes: %+v, %v", m, err)
	}
	for _, bad := range []string{"/nonexistent/x:/d", dir, dir + ":rel", dir + ":/d:rx", ":/d"} {
		if _, err := parseVolumes([]string{bad}); err == nil {
			t.Errorf("parseVolumes(%q) accepted", bad)
		}
	}
	r, err := parseResources("64m", 0.5)
	if err != nil || *r.Memory.Limit != 64<<20 || *r.CPU.Quota != 50000 || *r.CPU.Period != 100000 {
		t.Errorf("parseResources: %+v, %v", r, err)
	}
	for _, bad := range [][2]string{{"1k", ""}, {"lots", ""}, {"", "-1"}, {"", "0.001"}} {
		cpus := 0.0
		if bad[1] != "" {
			cpus = map[string]float64{"-1": -1, "0.001": 0.001}[bad[1]]
		}
		if _, err := parseResources(bad[0], cpus); err == nil {
			t.Errorf("parseResources(%q, %v) accepted", bad[0], cpus)
		}
	}
	envFile := filepath.Join(dir, "env")
	os.WriteFile(envFile, []byte("# comment\n\nA=1\nB = no\n"), 0o644)
	if _, err := readEnvFiles([]string{envFile}); err == nil {
		t.Errorf("an env file with 'B = no' was accepted")
	}
	os.WriteFile(envFile, []byte("# comment\n\nA=1\nC=x=y\nTETHER_TEST_UNSET_VAR\n"), 0o644)
	env, err := readEnvFiles([]string{envFile})
	if err != nil || strings.Join(env, ",") != "A=1,C=x=y" {
		t.Errorf("readEnvFiles: %q, %v", env, err)
	}
}

// TestHintsFromRemedies: the library's errors and reasons name no
// command; the CLI adds the one to type, from the remedy they carry: a
// container that is not there, and one whose create was cut off (its
// state, and a start refused).
func TestHintsFromRemedies(t *testing.T) {
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "half"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args       []string
		out, errs  string
		wantStatus int
	}{
		{[]string{"state", "nosuch"}, "", "tether state: container nosuch: not found in " + root + ": see 'tether list'\n", exitFailure},
		{[]string{"state", "half"}, "remove it with 'tether delete --force half'", "", 0},
		{[]string{"start", "half"}, "", ": remove it with 'tether delete --force half'\n", exitFailure},
		{[]string{"inspect", "half", "nosuch"}, "remove it with 'tether delete --force half'", "see 'tether list'", exitFailure},
		{[]string{"list", "--format", "{{.Reason}}"}, "remove it with 'tether delete --force half'", "", 0},
	} {
		out, errs, code := runCLI(t, append([]string{"--root", root}, tc.args...)...)
		if code != tc.wantStatus || !strings.Contains(out, tc.out) || !strings.Contains(errs, tc.errs) ||
			strings.Count(out+errs, "tether delete") > 1 {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit %d, %q in stdout, %q in stderr, one hint",
				tc.args, code, out, errs, tc.wantStatus, tc.out, tc.errs)
		}
	}
}

// TestBundleHints: the bundle package's errors name no command; a create
// from a folder that is no bundle, or whose config.json is bad, gets the
// way to write one.
func TestBundleHints(t *testing.T) {
	dir := t.TempDir()
	empty, rootfs, bad := filepath.Join(dir, "empty"), filepath.Join(dir, "rootfs"), filepath.Join(dir, "bad")
	for _, d := range []string{empty, filepath.Join(rootfs, "rootfs"), filepath.Join(bad, "rootfs")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(bad, "config.json"), []byte("{broken"), 0o644); err != nil {
		t.Fatal(err)
	}
	for bundleDir, want := range map[string]string{
		filepath.Join(dir, "nope"): "no such folder: write a bundle there with 'tether bundle " + filepath.Join(dir, "nope") + "'\n",
		empty:                      "no config.json: create one with 'tether bundle " + empty + "'\n",
		rootfs:                     "no config.json: write a default one with 'runc spec' in that folder, or a whole new bundle with 'tether bundle NEWDIR'\n",
		bad:                        ": fix it; or write a new bundle with 'tether bundle NEWDIR'\n",
	} {
		_, errs, code := runCLI(t, "--root", filepath.Join(dir, "root"), "create", "--bundle", bundleDir, "b1")
		if code != exitFailure || !strings.HasSuffix(errs, want) {
			t.Errorf("create --bundle %s: exit %d, %q; want it to end in %q", bundleDir, code, errs, want)
		}
	}
}

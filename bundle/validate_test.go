package bundle

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// minimalConfig is a config.json that Validate accepts once rootfs exists.
const minimalConfig = `{"ociVersion": "1.0.2", "process": {"args": ["sh"], "cwd": "/"}, "root": {"path": "rootfs"}}`

// validateCases are broken bundles, each with the sentinel and the text
// that Validate must return for it; DIR in wantText stands for the bundle.
var validateCases = []struct {
	name     string
	setup    func(t *testing.T, dir string) string // returns the path given to Validate
	wantErr  error
	wantText string
}{
	{"missing folder", func(t *testing.T, dir string) string {
		return filepath.Join(dir, "nope")
	}, ErrNoBundle, "no such folder"},
	{"a file instead of a folder", func(t *testing.T, dir string) string {
		mustWrite(t, filepath.Join(dir, "f"), minimalConfig)
		return filepath.Join(dir, "f")
	}, ErrNoBundle, "is a file, not a folder"},
	{"no config.json in an empty folder", func(t *testing.T, dir string) string {
		return dir
	}, ErrNoBundle, "no config.json"},
	{"no config.json beside a rootfs", func(t *testing.T, dir string) string {
		mustMkdir(t, filepath.Join(dir, "rootfs"))
		return dir
	}, ErrNoBundle, "no config.json"},
	{"bad JSON", func(t *testing.T, dir string) string {
		return withConfig(t, dir, "{\n  \"process\": {\n    \"args\": [\"sh\",]\n  }\n}\n")
	}, ErrBadConfig, "config.json line 3, column 19: invalid character ']'"},
	{"wrong JSON type", func(t *testing.T, dir string) string {
		return withConfig(t, dir, "{\"process\": {\"args\": \"sh\"}}")
	}, ErrBadConfig, "config.json line 1, column 25: json: cannot unmarshal string"},
	{"empty config.json", func(t *testing.T, dir string) string {
		return withConfig(t, dir, "")
	}, ErrBadConfig, "unexpected end of JSON input"},
	{"no process", func(t *testing.T, dir string) string {
		return withConfig(t, dir, `{"root": {"path": "rootfs"}}`)
	}, ErrBadConfig, `config.json has no "process"`},
	{"missing process args", func(t *testing.T, dir string) string {
		return withConfig(t, dir, `{"process": {"cwd": "/"}, "root": {"path": "rootfs"}}`)
	}, ErrBadConfig, "empty process.args"},
	{"no root.path", func(t *testing.T, dir string) string {
		return withConfig(t, dir, `{"process": {"args": ["sh"]}}`)
	}, ErrBadConfig, "no root.path"},
	{"missing rootfs", func(t *testing.T, dir string) string {
		mustWrite(t, filepath.Join(dir, "config.json"), minimalConfig)
		return dir
	}, ErrBadConfig, `root.path "rootfs" (` + "DIR" + `/rootfs) does not exist`},
	{"rootfs is a file", func(t *testing.T, dir string) string {
		mustWrite(t, filepath.Join(dir, "config.json"), minimalConfig)
		mustWrite(t, filepath.Join(dir, "rootfs"), "")
		return dir
	}, ErrBadConfig, "is not a folder"},
}

func TestValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range validateCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := tc.setup(t, t.TempDir())
			spec, err := Validate(dir)
			if spec != nil || !errors.Is(err, tc.wantErr) {
				t.Fatalf("Validate = %v, %v; want nil and %v", spec, err, tc.wantErr)
			}
			msg := err.Error()
			want := strings.ReplaceAll(tc.wantText, "DIR", dir)
			if !strings.HasPrefix(msg, "bundle "+dir+": ") || !strings.Contains(msg, want) {
				t.Errorf("message %q\nwant prefix %q and %q", msg, "bundle "+dir+": ", want)
			}
			if strings.Contains(msg, "tether ") {
				t.Errorf("message names a command of the CLI (it adds its own hints): %q", msg)
			}
			if strings.ContainsAny(msg, "\r\n") {
				t.Errorf("message is not one line: %q", msg)
			}
			other := ErrBadConfig
			if tc.wantErr == ErrBadConfig {
				other = ErrNoBundle
			}
			if errors.Is(err, other) {
				t.Errorf("error also matches %v", other)
			}
		})
	}
}

// withConfig writes config.json and an empty rootfs into dir.
func withConfig(t *testing.T, dir, config string) string {
	t.Helper()
	mustWrite(t, filepath.Join(dir, "config.json"), config)
	mustMkdir(t, filepath.Join(dir, "rootfs"))
	return dir
}

func TestValidateAcceptsMinimalBundle(t *testing.T) {
	t.Parallel()
	dir := withConfig(t, t.TempDir(), minimalConfig)
	spec, err := Validate(dir)
	if err != nil || spec.Process.Args[0] != "sh" {
		t.Fatalf("Validate = %v, %v", spec, err)
	}
	abs := t.TempDir()
	mustWrite(t, filepath.Join(dir, "config.json"), `{"process": {"args": ["sh"]}, "root": {"path": "`+abs+`"}}`)
	if _, err := Validate(dir); err != nil {
		t.Errorf("Validate with an absolute root.path: %v", err)
	}
}

func TestLoadSpecUnreadableConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mustMkdir(t, filepath.Join(dir, "config.json"))
	_, err := LoadSpec(dir)
	if !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), "cannot read config.json") {
		t.Fatalf("LoadSpec with config.json a folder = %v, want ErrBadConfig", err)
	}
	if _, err := LoadSpec(filepath.Join(dir, "missing")); !errors.Is(err, ErrNoBundle) || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("LoadSpec of a missing folder = %v, want ErrNoBundle wrapping ErrNotExist", err)
	}
}

func TestLineCol(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		data      string
		offset    int64
		line, col int
	}{
		{"empty input", "", 0, 1, 1},
		{"first byte", "x", 1, 1, 1},
		{"first line", `{"a": x}`, 7, 1, 7},
		{"third line", "{\n\"a\":\n  x}", 10, 3, 3},
		{"offset past the end", "{\n", 9, 2, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			line, col := lineCol([]byte(tc.data), tc.offset)
			if line != tc.line || col != tc.col {
				t.Errorf("lineCol(%q, %d) = %d, %d; want %d, %d", tc.data, tc.offset, line, col, tc.line, tc.col)
			}
		})
	}
}

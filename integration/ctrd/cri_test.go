package ctrd

// Kubernetes' CRI through containerd's CRI plugin and crictl, with the
// runtime handler "tether". Images are built here as OCI archives from the
// busybox bundle and imported; nothing is pulled.

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tether-run/tether/bundle"
	"github.com/tether-run/tether/internal/testutil"
)

// crictlVersion is the cri-tools release the tests build.
const crictlVersion = "v1.37.0"

var crictlBuild struct {
	once sync.Once
	path string
	err  error
}

// crictl returns a crictl binary: TETHER_CRICTL, one on PATH, or one built
// once from the Go module proxy into the user's Go cache folder.
func crictlPath(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("TETHER_CRICTL"); p != "" {
		return p
	}
	if p, err := exec.LookPath("crictl"); err == nil {
		return p
	}
	crictlBuild.once.Do(func() {
		cache, err := os.UserCacheDir()
		if err != nil {
			crictlBuild.err = err
			return
		}
		dir := filepath.Join(cache, "tether", "crictl-"+crictlVersion)
		crictlBuild.path = filepath.Join(dir, "crictl")
		if _, err := os.Stat(crictlBuild.path); err == nil {
			return
		}
		cmd := exec.Command("go", "install", "sigs.k8s.io/cri-tools/cmd/crictl@"+crictlVersion)
		cmd.Env = append(os.Environ(), "GOBIN="+dir, "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			crictlBuild.err = fmt.Errorf("go install crictl: %v: %s", err, out)
		}
	})
	if crictlBuild.err != nil {
		t.Fatal(crictlBuild.err)
	}
	return crictlBuild.path
}

// ociArchive writes an OCI image archive named name whose single layer is
// rootfs and whose command is cmd.
func ociArchive(t testing.TB, path, name, rootfs string, cmd []string) {
	t.Helper()
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	err := filepath.WalkDir(rootfs, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == rootfs {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		if info.Mode()&os.ModeSymlink != 0 {
			link, _ = os.Readlink(p)
		}
		hdr, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		hdr.Name, _ = filepath.Rel(rootfs, p)
		if d.IsDir() {
			hdr.Name += "/"
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if info.Mode().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.Copy(tw, f)
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	tw.Close()
	blobs := map[string][]byte{}
	add := func(b []byte) (string, int) {
		d := fmt.Sprintf("sha256:%x", sha256.Sum256(b))
		blobs[d] = b
		return d, len(b)
	}
	layerDigest, layerSize := add(layer.Bytes())
	cfg, _ := json.Marshal(map[string]any{"architecture": "amd64", "os": "linux",
		"config":  map[string]any{"Cmd": cmd, "Env": []string{"PATH=/bin:/usr/bin:/sbin:/usr/sbin"}},
		"rootfs":  map[string]any{"type": "layers", "diff_ids": []string{layerDigest}},
		"history": []any{}})
	cfgDigest, cfgSize := add(cfg)
	manifest, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfgDigest, "size": cfgSize},
		"layers": []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layerDigest, "size": layerSize}}})
	mDigest, mSize := add(manifest)
	index, _ := json.Marshal(map[string]any{"schemaVersion": 2, "manifests": []any{map[string]any{
		"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": mDigest, "size": mSize,
		"platform":    map[string]string{"architecture": "amd64", "os": "linux"},
		"annotations": map[string]string{"io.containerd.image.name": name, "org.opencontainers.image.ref.name": name}}}})
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := tar.NewWriter(f)
	write := func(name string, b []byte) {
		out.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg})
		out.Write(b)
	}
	write("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`))
	write("index.json", index)
	for d, b := range blobs {
		write("blobs/sha256/"+strings.TrimPrefix(d, "sha256:"), b)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

const (
	pauseImage   = "tether.test/pause:1"
	busyboxImage = "tether.test/busybox:1"
)

// startCRI starts a private containerd with the CRI plugin, the tether
// runtime handler and the two images imported.
func startCRI(t *testing.T) (*ctrd, func(args ...string) (string, error)) {
	requireContainerd(t)
	crictl := crictlPath(t)
	cniDir, err := os.MkdirTemp("", "cni")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(cniDir) })
	cfg := fmt.Sprintf(`[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "tether"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.tether]
      runtime_type = %q
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %q
    conf_dir = %q
`, pauseImage, tetherRuntime, cniDir, cniDir)
	c := startContainerd(t, true, cfg)
	b := filepath.Join(c.dir, "img")
	if err := bundle.Write(b, bundle.Options{Args: []string{"true"}}); err != nil {
		t.Fatal(err)
	}
	for _, img := range []struct {
		name string
		cmd  []string
	}{{pauseImage, []string{"/bin/sleep", "2147483647"}}, {busyboxImage, []string{"/bin/sh"}}} {
		tarPath := filepath.Join(c.dir, strings.NewReplacer("/", "_", ":", "_").Replace(img.name)+".tar")
		ociArchive(t, tarPath, img.name, filepath.Join(b, "rootfs"), img.cmd)
		c.ctr("image", "import", tarPath)
	}
	run := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, crictl, append([]string{"--runtime-endpoint", "unix://" + c.sock, "--timeout", "30s"}, args...)...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			return out.String(), fmt.Errorf("crictl %s: %w: %s", strings.Join(args, " "), err, errb.String())
		}
		return out.String(), nil
	}
	return c, run
}

func writeJSON(t *testing.T, path string, v any) string {
	t.Helper()
	b, _ := json.Marshal(v)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCRIPod(t *testing.T) {
	c, crictl := startCRI(t)
	must := func(args ...string) string {
		t.Helper()
		out, err := crictl(args...)
		if err != nil {
			t.Fatalf("%v\ncontainerd: %s", err, c.logTail())
		}
		return strings.TrimSpace(out)
	}
	name := uniq("pod")
	pod := writeJSON(t, filepath.Join(c.dir, "pod.json"), map[string]any{
		"metadata":      map[string]any{"name": name, "namespace": "default", "uid": name, "attempt": 0},
		"log_directory": filepath.Join(c.dir, "logs"),
		"linux":         map[string]any{"security_context": map[string]any{"namespace_options": map[string]any{"network": 2}}},
	})
	ctrCfg := func(cname string, cmd ...string) string {
		return writeJSON(t, filepath.Join(c.dir, cname+".json"), map[string]any{
			"metadata": map[string]any{"name": cname}, "image": map[string]any{"image": busyboxImage},
			"command": cmd, "log_path": cname + ".log"})
	}
	podID := must("runp", "--runtime", "tether", pod)
	cid := must("create", podID, ctrCfg("web", "/bin/sh", "-c", "echo hello-cri; while :; do sleep 1; done"), pod)
	must("start", cid)
	if out := must("ps", "-q", "--state", "running"); !strings.Contains(out, cid) {
		t.Fatalf("crictl ps does not list %s running:\n%s", cid, out)
	}
	testutil.Eventually(t, 10*time.Second, "container log", func() bool {
		out, _ := crictl("logs", cid)
		return strings.Contains(out, "hello-cri")
	})
	if out := must("exec", cid, "/bin/sh", "-c", "echo exec-ok"); out != "exec-ok" {
		t.Fatalf("crictl exec: %q", out)
	}
	if _, err := crictl("exec", cid, "/bin/sh", "-c", "exit 7"); err == nil || !strings.Contains(err.Error(), "exit code 7") {
		t.Fatalf("crictl exec of exit 7: %v", err)
	}
	if out := must("stats", "-o", "json", cid); !strings.Contains(out, "workingSetBytes") {
		t.Fatalf("crictl stats has no memory:\n%s", out)
	}

	t.Run("restart", func(t *testing.T) {
		c.kill9()
		c.start()
		testutil.Eventually(t, 20*time.Second, "container running after the restart", func() bool {
			out, _ := crictl("ps", "-q", "--state", "running")
			return strings.Contains(out, cid)
		})
	})

	// A container that exits is seen as CONTAINER_EXITED with its code.
	cid2 := must("create", podID, ctrCfg("job", "/bin/sh", "-c", "exit 7"), pod)
	must("start", cid2)
	testutil.Eventually(t, 20*time.Second, "CONTAINER_EXITED with code 7", func() bool {
		out, _ := crictl("inspect", cid2)
		return regexp.MustCompile(`"state": "CONTAINER_EXITED"`).MatchString(out) &&
			regexp.MustCompile(`"exitCode": 7`).MatchString(out)
	})
	must("stop", cid)
	must("rm", cid, cid2)
	must("stopp", podID)
	must("rmp", podID)
	if out := must("pods", "-q"); out != "" {
		t.Fatalf("pods left: %s", out)
	}
}

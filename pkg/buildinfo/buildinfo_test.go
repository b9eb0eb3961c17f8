package buildinfo

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestRevision(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		bi     *debug.BuildInfo
		ok     bool
		linked string
		want   string
	}{
		{name: "no build info", bi: nil, ok: false, want: "unknown"},
		{name: "no vcs", bi: &debug.BuildInfo{Settings: []debug.BuildSetting{{Key: "-trimpath", Value: "true"}}}, ok: true, want: "unknown"},
		{name: "no vcs, linked", bi: &debug.BuildInfo{}, ok: true, linked: "abc123", want: "abc123"},
		{name: "no vcs, linked default", bi: &debug.BuildInfo{}, ok: true, linked: "unknown", want: "unknown"},
		{name: "vcs wins over linked", bi: &debug.BuildInfo{Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "def456"}}}, ok: true, linked: "abc123", want: "def456"},
		{name: "vcs", bi: &debug.BuildInfo{Settings: []debug.BuildSetting{
			{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: "287076d0c0ffee"}, {Key: "vcs.modified", Value: "false"},
		}}, ok: true, want: "287076d0c0ffee"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := revision(tc.bi, tc.ok, tc.linked); got != tc.want {
				t.Errorf("revision() = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestCollector: the gauge is 1 and carries the version main set, the Go
// version and a revision, under the service's name. Not parallel: it sets
// the process's version.
func TestCollector(t *testing.T) {
	SetVersion("v1.2.3")
	t.Cleanup(func() { SetVersion("dev") })
	SetVersion("") // keeps v1.2.3
	reg := prometheus.NewRegistry()
	reg.MustRegister(Collector("ingester"))
	want := `
# HELP zen_build_info Always 1; the labels name the service's build: version (-ldflags main.version), Go version and VCS revision.
# TYPE zen_build_info gauge
zen_build_info{goversion="` + runtime.Version() + `",revision="` + Read().Revision + `",service="ingester",version="v1.2.3"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), MetricName); err != nil {
		t.Error(err)
	}
}

// TestBuiltBinary builds a main as the Makefile builds the services
// (-trimpath, -ldflags -X main.version=…) from a fresh git repository (the
// toolchain finds a repository only where .git is a directory, so not in a
// git worktree): the version is main's, and the revision the commit's.
func TestBuiltBinary(t *testing.T) {
	t.Parallel()
	pkgDir, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	sum, err := os.ReadFile(filepath.Join(pkgDir, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files := map[string]string{
		"go.mod": "module example.com/printinfo\n\ngo 1.26.0\n\nrequire github.com/zen-twilio/zen/pkg v0.0.0\n\nreplace github.com/zen-twilio/zen/pkg => " + pkgDir + "\n",
		"go.sum": string(sum),
		"main.go": `package main

import (
	"fmt"

	"github.com/zen-twilio/zen/pkg/buildinfo"
)

// version is set at build time (-ldflags -X main.version=…).
var version = "dev"

func main() {
	buildinfo.SetVersion(version)
	i := buildinfo.Read()
	fmt.Println(i.Version, i.GoVersion, i.Revision)
}
`,
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	buildvcs := "true"
	run := func(name string, args ...string) string {
		t.Helper()
		c := exec.Command(name, args...)
		c.Dir = dir
		// The toolchain stamps the revision unless told not to (a machine's
		// go env may say GOFLAGS=-buildvcs=false); a release build stamps it.
		c.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-buildvcs="+buildvcs+" -mod=mod",
			"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
		out, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	run("git", "init", "-q")
	run("git", "add", ".")
	run("git", "commit", "-q", "-m", "build")
	head := run("git", "rev-parse", "HEAD")
	run("go", "build", "-trimpath", "-ldflags", "-s -w -X main.version=v9.8.7", "-o", "printinfo", ".")
	got := strings.Fields(run(filepath.Join(dir, "printinfo")))
	if want := []string{"v9.8.7", runtime.Version(), head}; !slices.Equal(got, want) {
		t.Errorf("built binary reports %q, want %q", got, want)
	}

	// As the Dockerfiles build (no .git in the context): the REVISION
	// argument linked in.
	buildvcs = "false"
	run("go", "build", "-trimpath", "-ldflags", "-s -w -X main.version=v9.8.7 -X github.com/zen-twilio/zen/pkg/buildinfo.linkedRevision=abc123", "-o", "printinfo", ".")
	got = strings.Fields(run(filepath.Join(dir, "printinfo")))
	if want := []string{"v9.8.7", runtime.Version(), "abc123"}; !slices.Equal(got, want) {
		t.Errorf("binary built without VCS, revision linked: reports %q, want %q", got, want)
	}
}

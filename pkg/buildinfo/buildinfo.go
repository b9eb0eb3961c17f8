// Package buildinfo says which build a service binary is, as the gauge
// zen_build_info{service,version,goversion,revision} = 1 on its /metrics,
// so a dashboard or an alert can tell which release runs where (issue 27).
//
// The version is the one main was linked with (`-ldflags -X
// main.version=…`, set by the Makefile and the Dockerfiles); main hands it
// over with [SetVersion] before it starts the service. The revision is the
// VCS commit the Go toolchain stamps into a binary built from a checkout
// (runtime/debug.ReadBuildInfo, setting vcs.revision); where there is none
// (the images build from a context without .git) the one linked in with
// `-X github.com/zen-twilio/zen/pkg/buildinfo.linkedRevision=…` (the
// Dockerfiles' REVISION argument); else "unknown" (a test binary).
package buildinfo

import (
	"runtime"
	"runtime/debug"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// MetricName is the build information gauge every service exports.
const MetricName = "zen_build_info"

// unknown is the value of a label the build does not know.
const unknown = "unknown"

var (
	mu      sync.Mutex
	version = "dev"
)

// linkedRevision is set at build time where the toolchain cannot stamp the
// revision (-ldflags -X …/buildinfo.linkedRevision=<commit>).
var linkedRevision = ""

// SetVersion records the binary's version (main's -ldflags variable). Call
// it once from main, before the service is created; an empty v keeps "dev".
// Safe for concurrent use.
func SetVersion(v string) {
	if v == "" {
		return
	}
	mu.Lock()
	defer mu.Unlock()
	version = v
}

// Info is one binary's build.
type Info struct {
	Version   string // main's version, "dev" unless set
	GoVersion string // the Go toolchain, e.g. "go1.26.8"
	Revision  string // the VCS commit, or "unknown"
}

// Read returns this binary's build information.
func Read() Info {
	mu.Lock()
	v := version
	mu.Unlock()
	bi, ok := debug.ReadBuildInfo()
	return Info{Version: v, GoVersion: runtime.Version(), Revision: revision(bi, ok, linkedRevision)}
}

// revision is the vcs.revision setting of bi, else linked, else "unknown".
func revision(bi *debug.BuildInfo, ok bool, linked string) string {
	if ok && bi != nil {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && s.Value != "" {
				return s.Value
			}
		}
	}
	if linked != "" && linked != unknown {
		return linked
	}
	return unknown
}

// Collector returns the gauge zen_build_info = 1 for service, labelled with
// [Read]'s information at the time of the call. Register it on the
// service's registry.
func Collector(service string) prometheus.Collector {
	info := Read()
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: MetricName,
		Help: "Always 1; the labels name the service's build: version (-ldflags main.version), Go version and VCS revision.",
		ConstLabels: prometheus.Labels{
			"service": service, "version": info.Version, "goversion": info.GoVersion, "revision": info.Revision,
		},
	})
	g.Set(1)
	return g
}

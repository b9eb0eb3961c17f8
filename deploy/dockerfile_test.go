package deploy

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// dockerfiles are the images the manifests run, by image name.
var dockerfiles = map[string]string{
	"ingester":    "../services/ingester/Dockerfile",
	"transformer": "../services/transformer/Dockerfile",
	"forwarder":   "../services/forwarder/Dockerfile",
	"zen":         "../cmd/zen/Dockerfile",
}

// stage is one FROM … of a Dockerfile: its FROM line and its instructions,
// continuation lines joined, comments dropped.
type stage struct {
	from  string
	lines []string
}

// dockerStages splits a Dockerfile into its stages.
func dockerStages(b []byte) []stage {
	var out []stage
	var cur strings.Builder
	flush := func() {
		l := strings.TrimSpace(cur.String())
		cur.Reset()
		if l == "" {
			return
		}
		if strings.HasPrefix(l, "FROM ") {
			out = append(out, stage{from: l})
		} else if len(out) > 0 {
			out[len(out)-1].lines = append(out[len(out)-1].lines, l)
		}
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "#") {
			continue
		}
		if rest, ok := strings.CutSuffix(l, "\\"); ok {
			cur.WriteString(rest + " ")
			continue
		}
		cur.WriteString(l)
		flush()
	}
	flush()
	return out
}

// declares reports whether the stage declares build argument name.
func (s stage) declares(name string) bool {
	for _, l := range s.lines {
		if l == "ARG "+name || strings.HasPrefix(l, "ARG "+name+"=") {
			return true
		}
	}
	return false
}

var ociLabel = regexp.MustCompile(`(org\.opencontainers\.image\.[a-z.]+)="([^"]*)"`)

// TestDockerfiles checks the Dockerfiles as text: there is no Docker engine
// on the machines this project builds and tests on, so no image is built
// here. The build stage runs on the builder's platform and cross-compiles
// for the target's (FROM --platform=$BUILDPLATFORM, GOOS/GOARCH from
// TARGETOS/TARGETARCH, each declared in that stage, as ARGs are per stage);
// the final stage carries the OCI labels, the version and revision from
// build arguments it declares; the binary gets the same VERSION (and the
// services the REVISION for zen_build_info) through -ldflags.
func TestDockerfiles(t *testing.T) {
	t.Parallel()
	for name, path := range dockerfiles {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			stages := dockerStages(b)
			if len(stages) != 2 {
				t.Fatalf("%s: %d stages, want build and final", path, len(stages))
			}
			build, final := stages[0], stages[1]
			if !strings.HasPrefix(build.from, "FROM --platform=$BUILDPLATFORM ") {
				t.Errorf("%s: build stage %q does not run on $BUILDPLATFORM", path, build.from)
			}
			if strings.Contains(final.from, "--platform") {
				t.Errorf("%s: final stage %q must be the target platform's", path, final.from)
			}
			for _, arg := range []string{"TARGETOS", "TARGETARCH", "VERSION"} {
				if !build.declares(arg) {
					t.Errorf("%s: build stage does not declare ARG %s", path, arg)
				}
			}
			var goBuild string
			for _, l := range build.lines {
				if strings.Contains(l, "go build") {
					goBuild = l
				}
			}
			for _, want := range []string{"GOOS=${TARGETOS}", "GOARCH=${TARGETARCH}", "-trimpath", "-X main.version=${VERSION}"} {
				if !strings.Contains(goBuild, want) {
					t.Errorf("%s: the go build does not say %s: %q", path, want, goBuild)
				}
			}
			if name != "zen" {
				if !build.declares("REVISION") || !strings.Contains(goBuild, "-X github.com/zen-twilio/zen/pkg/buildinfo.linkedRevision=${REVISION}") {
					t.Errorf("%s: the go build does not link REVISION into pkg/buildinfo: %q", path, goBuild)
				}
			}

			labels := map[string]string{}
			for _, l := range final.lines {
				if strings.HasPrefix(l, "LABEL ") {
					for _, m := range ociLabel.FindAllStringSubmatch(l, -1) {
						labels[m[1]] = m[2]
					}
				}
			}
			for key, want := range map[string]string{
				"org.opencontainers.image.title":       "zen-twilio " + name,
				"org.opencontainers.image.version":     "${VERSION}",
				"org.opencontainers.image.revision":    "${REVISION}",
				"org.opencontainers.image.source":      "https://github.com/zen-twilio/zen",
				"org.opencontainers.image.description": "",
				"org.opencontainers.image.base.name":   strings.TrimPrefix(final.from, "FROM "),
			} {
				got, ok := labels[key]
				switch {
				case !ok:
					t.Errorf("%s: final stage has no label %s", path, key)
				case want != "" && got != want:
					t.Errorf("%s: label %s = %q, want %q", path, key, got, want)
				case got == "":
					t.Errorf("%s: label %s is empty", path, key)
				}
			}
			for _, arg := range []string{"VERSION", "REVISION"} {
				if !final.declares(arg) {
					t.Errorf("%s: final stage uses ${%s} in a label but does not declare ARG %s (ARGs are per stage)", path, arg, arg)
				}
			}
		})
	}
}

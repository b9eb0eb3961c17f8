package deploy

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// sourcePackage is the transform package the copy under k8s/base/package
// must equal (kustomize reads only files below a kustomization).
const sourcePackage = "../packages/transforms/twilio/v1"

// TestPackageCopyIsCurrent: the ConfigMap zen-package is generated from a
// copy of packages/transforms/twilio/v1; the two must not drift.
func TestPackageCopyIsCurrent(t *testing.T) {
	t.Parallel()
	src, _ := filepath.Glob(filepath.Join(sourcePackage, "*.yaml"))
	dst, _ := filepath.Glob(filepath.Join(packageDir, "*.yaml"))
	if len(src) == 0 {
		t.Fatalf("no package files in %s", sourcePackage)
	}
	names := func(paths []string) string {
		var out []string
		for _, p := range paths {
			out = append(out, filepath.Base(p))
		}
		return strings.Join(out, " ")
	}
	const fix = "run: cp packages/transforms/twilio/v1/*.yaml deploy/k8s/base/package/ (and list new files in deploy/k8s/base/kustomization.yaml)"
	if names(src) != names(dst) {
		t.Fatalf("package files differ: %s has [%s], %s has [%s]; %s", sourcePackage, names(src), packageDir, names(dst), fix)
	}
	for _, s := range src {
		a, err := os.ReadFile(s)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(packageDir, filepath.Base(s)))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs from its copy in %s; %s", s, packageDir, fix)
		}
	}
	r := mustRender(t, "base")
	var found bool
	for name, cm := range r.configMaps() {
		if strings.HasPrefix(name, "zen-package-") {
			found = true
			if got := strings.Join(sortedKeys(cm.Data), " "); got != names(src) {
				t.Errorf("ConfigMap %s holds [%s], want every package file [%s]", name, got, names(src))
			}
		}
	}
	if !found {
		t.Errorf("no zen-package ConfigMap rendered")
	}
}

// TestREADMEDocumentsSecrets: deploy/k8s/README.md shows how to create every
// Secret and key the manifests reference, with obviously fake values.
func TestREADMEDocumentsSecrets(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("k8s/README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	for name, keys := range secretRefs {
		block := regexp.MustCompile(`kubectl -n \S+ create secret generic ` + regexp.QuoteMeta(name) + `((?:[ \t]*\\\n[^\n\\]*)+)`).FindStringSubmatch(readme)
		if block == nil {
			t.Errorf("README does not show `kubectl -n … create secret generic %s`", name)
			continue
		}
		for _, k := range keys {
			m := regexp.MustCompile(`--from-literal=` + regexp.QuoteMeta(k) + `=(\S+)`).FindStringSubmatch(block[1])
			if m == nil {
				t.Errorf("README: secret %s: no --from-literal=%s=…", name, k)
				continue
			}
			if v := strings.Trim(m[1], `'"\`); !strings.Contains(strings.ToLower(v), "fake") && !strings.Contains(v, "$(") {
				t.Errorf("README: secret %s key %s: example value %q must be obviously fake (contain \"fake\") or generated", name, k, v)
			}
		}
	}
	for _, must := range []string{"PUBLIC_URL", "TLS", "kubectl apply -k deploy/k8s/overlays/prod", "kubectl -n zen scale", "nats-box"} {
		if !strings.Contains(readme, must) {
			t.Errorf("README does not mention %q", must)
		}
	}
}

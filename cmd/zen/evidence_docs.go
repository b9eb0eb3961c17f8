package main

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/zen-twilio/zen/pkg/gctune"
	"github.com/zen-twilio/zen/services/ingester"
)

var (
	// mdLink is a Markdown link's target.
	mdLink = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	// codeSpan is an inline code span; testName a test function named in one.
	codeSpan = regexp.MustCompile("`[^`\n]+`")
	testName = regexp.MustCompile(`\b(?:Test|Fuzz|Benchmark)[A-Z0-9_]\w*`)
	// testFunc declares a test function in a _test.go file.
	testFunc = regexp.MustCompile(`(?m)^func ((?:Test|Fuzz|Benchmark)\w+)\(`)
)

// docCheck returns the check of a documentation row: each file (under the
// docs directory) exists and is not empty, each relative link resolves,
// each test function named in code spans exists in the repository, and the
// first file names each of mustName. It checks what a document refers to,
// not whether what it says is right: that is what the named tests are for.
func docCheck(files []string, mustName []string) gateCheck {
	return func(g *gateRun) (string, string) {
		links, tests := 0, 0
		for i, name := range files {
			path := filepath.Join(g.in.docs, name)
			b, err := os.ReadFile(path)
			if err != nil {
				return statusFail, err.Error()
			}
			doc := string(b)
			if strings.TrimSpace(doc) == "" {
				return statusFail, path + " is empty"
			}
			n, err := checkLinks(path, doc)
			if err != nil {
				return statusFail, err.Error()
			}
			links += n
			n, err = checkTestNames(path, doc, g.testFuncs())
			if err != nil {
				return statusFail, err.Error()
			}
			tests += n
			if i > 0 {
				continue
			}
			for _, s := range mustName {
				if !strings.Contains(doc, s) {
					return statusFail, fmt.Sprintf("%s does not name %s", path, s)
				}
			}
		}
		ev := fmt.Sprintf("%s: relative links resolve (%d), test functions named exist (%d)", strings.Join(files, ", "), links, tests)
		if len(mustName) > 0 {
			ev += fmt.Sprintf(", names the card's %d event types", len(mustName))
		}
		return statusPass, ev
	}
}

// checkLinks resolves each relative link of doc (at path), ignoring
// fragments, URLs and in-page anchors.
func checkLinks(path, doc string) (int, error) {
	n := 0
	for _, m := range mdLink.FindAllStringSubmatch(doc, -1) {
		target, _, _ := strings.Cut(m[1], "#")
		if target == "" || strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
			continue
		}
		if !exists(filepath.Join(filepath.Dir(path), target)) {
			return n, fmt.Errorf("%s: link %s does not resolve", path, m[1])
		}
		n++
	}
	return n, nil
}

// checkTestNames finds each test function named in a code span of doc.
func checkTestNames(path, doc string, have map[string]bool) (int, error) {
	n := 0
	for _, span := range codeSpan.FindAllString(doc, -1) {
		for _, name := range testName.FindAllString(span, -1) {
			if !have[name] {
				return n, fmt.Errorf("%s names %s, which no _test.go file declares", path, name)
			}
			n++
		}
	}
	return n, nil
}

// testFuncs returns the test functions declared under the repository
// root, read once per run.
func (g *gateRun) testFuncs() map[string]bool {
	if g.tests != nil {
		return g.tests
	}
	g.tests = map[string]bool{}
	filepath.WalkDir(repoRoot(), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() {
			if n := d.Name(); path != repoRoot() && (strings.HasPrefix(n, ".") || n == "testdata" || n == "bin") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil
		}
		for _, m := range testFunc.FindAllStringSubmatch(string(b), -1) {
			g.tests[m[1]] = true
		}
		return nil
	})
	return g.tests
}

// checkIngesterExample (G08): the example Deployment parses, runs a
// container named ingester, and sets only variables the ingester reads.
// Rendering it with its ConfigMaps and running it needs kustomize and a
// cluster: deploy's tests and the runbook do that.
func checkIngesterExample(g *gateRun) (string, string) {
	path := g.in.ingesterExample
	b, err := os.ReadFile(path)
	if err != nil {
		return statusFail, err.Error()
	}
	var d struct {
		Kind string `yaml:"kind"`
		Spec struct {
			Template struct {
				Spec struct {
					Containers []struct {
						Name string `yaml:"name"`
						Env  []struct {
							Name string `yaml:"name"`
						} `yaml:"env"`
					} `yaml:"containers"`
				} `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
	if err := yaml.Unmarshal(b, &d); err != nil {
		return statusFail, fmt.Sprintf("%s: %v", path, err)
	}
	known := map[string]bool{}
	// The service binary also reads the GC settings (servicemain → gctune).
	for _, v := range append(ingester.ConfigVars(), gctune.Vars()...) {
		known[v] = true
	}
	for _, c := range d.Spec.Template.Spec.Containers {
		if c.Name != "ingester" {
			continue
		}
		for _, e := range c.Env {
			if !known[e.Name] {
				return statusFail, fmt.Sprintf("%s sets %s, which the ingester does not read", path, e.Name)
			}
		}
		return statusPass, fmt.Sprintf("%s: a %s whose ingester container sets %d variables, all read by the ingester (rendering and running it: deploy's tests, docs/e2e-runbook.md)", shortPath(path), d.Kind, len(c.Env))
	}
	return statusFail, path + " has no container named ingester"
}

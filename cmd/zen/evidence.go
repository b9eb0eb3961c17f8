package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/zen-twilio/zen/pkg/fixture"
	"github.com/zen-twilio/zen/pkg/pack"
	"github.com/zen-twilio/zen/pkg/transform"
)

// `zen package evidence` computes the package card's readiness gate row by
// row (issue 24). A row says PASS only for a check run by this command, now;
// a row it cannot check offline says NOT CHECKED and why. Nothing is read
// from a previous run.

// gateRow is one computed row of the readiness gate.
type gateRow struct {
	id, criterion, status, evidence string
}

const (
	statusPass       = "PASS"
	statusFail       = "FAIL"
	statusNotChecked = "NOT CHECKED"
)

// gateCheck computes one row: its status and the evidence behind it.
type gateCheck func(g *gateRun) (status, evidence string)

// cardGate is the card's "Readiness Gate" table, its 16 rows in the card's
// order. The card names three rows by their blocker (TW-01, TW-02, TW-03);
// the others are numbered G01…G13 here. TestEvidenceRowsAreTheCards pins
// the list.
var cardGate = []struct {
	id, criterion string
	check         gateCheck
}{
	{"G01", "Transform package", checkTransformPackage},
	{"G02", "Event YAML definitions", checkEventDefinitions},
	{"G03", "Fixtures", checkFixtures},
	{"G04", "Golden outputs", checkGoldenOutputs},
	{"G05", "Golden test validation", checkGoldenValidation},
	{"G06", "Offline transform tests", checkTransformCases},
	{"G07", "Authprofile module", checkPublishedVectors},
	{"TW-01", "Request signature enforcement", checkSignatureVectors},
	{"G08", "Ingester example", checkIngesterExample},
	{"G09", "Quickstart", docCheck([]string{"quickstart.md"}, nil)},
	{"G10", "E2E runbook", docCheck([]string{"e2e-runbook.md"}, nil)},
	{"G11", "Troubleshooting", docCheck([]string{"troubleshooting.md"}, nil)},
	{"G12", "Launch hardening", docCheck([]string{"launch-hardening.md"}, nil)},
	{"G13", "Docs package", docCheck([]string{"twilio-setup.md", "transform-package.md"}, cardEventTypeNames())},
	{"TW-02", "Live E2E validated", checkLiveE2E},
	{"TW-03", "Form-encoding runtime verification", checkFormVectors},
}

// evidenceInputs names the files the gate reads; empty fields take their
// defaults under the repository root (see evidenceDefaults).
type evidenceInputs struct {
	pkgDir, fixtures, goldens, vectors, docs, ingesterExample string
}

// gateRun is what the checks share: the package as loaded (or why not),
// the fixtures and an engine whose clock is fixed at now.
type gateRun struct {
	in      evidenceInputs
	pkg     *pack.Package
	loadErr error
	files   []string
	engine  *transform.Engine
	engErr  error
	now     time.Time
	tests   map[string]bool // test functions of the repository, read on first use
}

func packageEvidence(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("evidence", flag.ContinueOnError)
	var in evidenceInputs
	fs.StringVar(&in.fixtures, "fixtures", "", "fixtures directory (default <repo>/fixtures/<provider>)")
	fs.StringVar(&in.goldens, "goldens", "", "goldens directory (default <repo>/goldens/<provider>)")
	fs.StringVar(&in.vectors, "vectors", "", "signature, form-encoding and transform vectors (default <repo>/fixtures/<provider>/vectors)")
	fs.StringVar(&in.docs, "docs", "", "documentation directory (default <repo>/docs)")
	fs.StringVar(&in.ingesterExample, "ingester-example", "", "the ingester's example Deployment (default <repo>/deploy/k8s/base/ingester/deployment.yaml)")
	dir, code, ok := parseDirArgs(fs, args, stdout, stderr)
	if !ok {
		return code
	}
	in.pkgDir = dir
	rows := evidence(in)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tCRITERION\tSTATUS\tEVIDENCE")
	count := map[string]int{}
	var open []string
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.id, r.criterion, r.status, r.evidence)
		count[r.status]++
		if r.status != statusPass {
			open = append(open, r.id)
		}
	}
	tw.Flush()
	fmt.Fprintf(stdout, "\ngate: %d rows: %d PASS, %d NOT CHECKED, %d FAIL\n", len(rows), count[statusPass], count[statusNotChecked], count[statusFail])
	if count[statusFail] > 0 {
		return 1
	}
	if len(open) > 0 {
		fmt.Fprintf(stdout, "not V1-ready while a row is not PASS: %s\n", strings.Join(open, ", "))
	}
	return 0
}

// evidence computes every row of cardGate, in order.
func evidence(in evidenceInputs) []gateRow {
	g := &gateRun{in: in, now: time.Date(2026, 6, 24, 10, 0, 0, 0, time.UTC)}
	g.pkg, g.loadErr = pack.LoadWith(in.pkgDir, lookupEnv, pack.Options{AllowMissingEnv: true})
	provider := "twilio"
	if g.loadErr == nil {
		provider = g.pkg.Meta.Provider
		now := g.now
		g.engine, g.engErr = transform.New(g.pkg, transform.WithClock(func() time.Time { return now }))
	}
	g.in = evidenceDefaults(in, repoRoot(), provider)
	g.files, _ = fixture.List(g.in.fixtures)
	rows := make([]gateRow, 0, len(cardGate))
	for _, c := range cardGate {
		status, ev := c.check(g)
		rows = append(rows, gateRow{c.id, c.criterion, status, ev})
	}
	return rows
}

func evidenceDefaults(in evidenceInputs, root, provider string) evidenceInputs {
	def := func(s *string, path ...string) {
		if *s == "" {
			*s = filepath.Join(append([]string{root}, path...)...)
		}
	}
	def(&in.fixtures, "fixtures", provider)
	def(&in.goldens, "goldens", provider)
	def(&in.vectors, "fixtures", provider, "vectors")
	def(&in.docs, "docs")
	def(&in.ingesterExample, "deploy", "k8s", "base", "ingester", "deployment.yaml")
	return in
}

// noPackage is the evidence of a row that needs the package when it
// does not load (G01 says why).
const noPackage = "the package does not load (G01)"

func checkTransformPackage(g *gateRun) (string, string) {
	if g.loadErr != nil {
		return statusFail, firstLine(g.loadErr.Error())
	}
	path := filepath.Join(g.in.pkgDir, "package.yaml")
	if n := len(g.pkg.Warnings); n > 0 {
		return statusFail, fmt.Sprintf("%s loads with %d warning(s): %s", path, n, g.pkg.Warnings[0])
	}
	ev := shortPath(path) + " loads and validates (strict YAML, every reference resolved)"
	if len(g.pkg.MissingEnv) > 0 {
		ev += "; unset here, so their values are not checked: " + strings.Join(g.pkg.MissingEnv, ", ")
	}
	return statusPass, ev
}

// cardEventTypes is the card's "Event Type Mapping".
var cardEventTypes = []struct {
	twilioEvent, eventType string
	priority               int
}{
	{"incoming-message", "message.incoming", 70},
	{"message-status", "message.status", 75},
	{"incoming-call", "call.incoming", 60},
	{"call-status", "call.status", 65},
	{"recording-status", "recording.status", 70},
	{"verification-status", "verification.status", 80},
}

func cardEventTypeNames() []string {
	var out []string
	for _, c := range cardEventTypes {
		out = append(out, c.eventType)
	}
	return out
}

// checkEventDefinitions: each event of the card's mapping has a rule with
// the card's priority, and every routed event has a rule.
func checkEventDefinitions(g *gateRun) (string, string) {
	if g.loadErr != nil {
		return statusFail, noPackage
	}
	var problems []string
	for _, c := range cardEventTypes {
		if !hasRule(g.pkg, c.twilioEvent, c.eventType, c.priority) {
			problems = append(problems, fmt.Sprintf("no rule %s → %s with priority %d", c.twilioEvent, c.eventType, c.priority))
		}
	}
	routed := 0
	for _, r := range g.pkg.Routes() {
		for _, e := range r.EventTypes {
			routed++
			if _, ok := g.pkg.RuleForType(e); !ok {
				problems = append(problems, "routed event without a rule: "+e)
			}
		}
	}
	if len(problems) > 0 {
		return statusFail, strings.Join(problems, "; ")
	}
	return statusPass, fmt.Sprintf("%d rules in %s; the card's %d event types have a rule with the card's priority; all %d routed events have one",
		len(g.pkg.Rules), strings.Join(baseNames(g.pkg.RuleFiles), ", "), len(cardEventTypes), routed)
}

func hasRule(p *pack.Package, twilioEvent, eventType string, priority int) bool {
	for _, r := range p.Rules {
		if r.TwilioEvent == twilioEvent && r.EventType == eventType && r.Priority == priority {
			return true
		}
	}
	return false
}

// checkFixtures: the fixtures load and every rule's Twilio event has one.
func checkFixtures(g *gateRun) (string, string) {
	if g.loadErr != nil {
		return statusFail, noPackage
	}
	if len(g.files) == 0 {
		return statusFail, "no fixtures in " + g.in.fixtures
	}
	byEvent := map[string]int{}
	for _, f := range g.files {
		fx, err := fixture.Load(f)
		if err != nil {
			return statusFail, firstLine(err.Error())
		}
		byEvent[fx.Event()]++
	}
	var none []string
	for _, r := range g.pkg.Rules {
		if byEvent[r.TwilioEvent] == 0 && !slices.Contains(none, r.TwilioEvent) {
			none = append(none, r.TwilioEvent)
		}
	}
	if len(none) > 0 {
		return statusFail, "rules without a fixture: " + strings.Join(none, ", ")
	}
	return statusPass, fmt.Sprintf("%d fixtures in %s load and cover all %d rules' Twilio events", len(g.files), shortPath(g.in.fixtures), len(g.pkg.Rules))
}

func checkGoldenOutputs(g *gateRun) (string, string) {
	if len(g.files) == 0 {
		return statusFail, "no fixtures in " + g.in.fixtures
	}
	var missing []string
	for _, f := range g.files {
		if gp := goldenFor(g.in.goldens, f); !exists(gp) {
			missing = append(missing, filepath.Base(gp))
		}
	}
	if len(missing) > 0 {
		return statusFail, "missing: " + strings.Join(missing, ", ")
	}
	return statusPass, fmt.Sprintf("%d goldens in %s, one per fixture", len(g.files), shortPath(g.in.goldens))
}

// checkGoldenValidation runs transform.CheckGolden, the comparison of
// `go test ./pkg/transform`, on every fixture that has a golden.
func checkGoldenValidation(g *gateRun) (string, string) {
	if g.loadErr != nil {
		return statusFail, noPackage
	}
	if g.engErr != nil {
		return statusFail, g.engErr.Error()
	}
	var mismatches []string
	checked := 0
	for _, f := range g.files {
		gp := goldenFor(g.in.goldens, f)
		if !exists(gp) {
			continue
		}
		checked++
		if err := transform.CheckGolden(g.engine, f, gp, g.now); err != nil {
			mismatches = append(mismatches, filepath.Base(gp)+": "+firstLine(err.Error()))
		}
	}
	switch {
	case checked == 0:
		return statusFail, "no golden could be checked"
	case len(mismatches) > 0:
		return statusFail, strings.Join(mismatches, "; ")
	}
	return statusPass, fmt.Sprintf("%d/%d goldens equal the engine's output (canonical JSON, clock %s)", checked, checked, g.now.Format(time.RFC3339))
}

func checkLiveE2E(*gateRun) (string, string) {
	return statusNotChecked, "needs a live Twilio account and a public URL; offline there is nothing to check: run docs/e2e-runbook.md"
}

// shortPath shows a path under the repository root relative to it.
func shortPath(path string) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		return path
	}
	if r, err := filepath.Rel(repoRoot(), abs); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return path
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func baseNames(paths []string) []string {
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = filepath.Base(p)
	}
	return out
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/zen-twilio/zen/pkg/envconf"
	"github.com/zen-twilio/zen/pkg/fixture"
	"github.com/zen-twilio/zen/pkg/pack"
	"github.com/zen-twilio/zen/pkg/transform"
)

// lookupEnv is the environment the commands read; tests replace it.
var lookupEnv envconf.Lookup = os.LookupEnv

func runPackage(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: zen package validate|inspect|evidence <dir or package name> [flags]")
		return 2
	}
	switch args[0] {
	case "validate":
		return packageValidate(args[1:], stdout, stderr)
	case "inspect":
		return packageInspect(args[1:], stdout, stderr)
	case "evidence":
		return packageEvidence(args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "zen package: unknown subcommand %q (want validate, inspect or evidence)\n", args[0])
	return 2
}

// parseDirArgs parses flags placed before or after the one positional
// argument, the package directory (or a package name under packages/transforms).
func parseDirArgs(fs *flag.FlagSet, args []string, stderr io.Writer) (string, bool) {
	fs.SetOutput(stderr)
	var pos []string
	for len(args) > 0 {
		if err := fs.Parse(args); err != nil {
			return "", false
		}
		args = fs.Args()
		if len(args) > 0 {
			pos = append(pos, args[0])
			args = args[1:]
		}
	}
	if len(pos) != 1 {
		fmt.Fprintf(stderr, "usage: zen package %s <dir or package name>\n", fs.Name())
		fs.PrintDefaults()
		return "", false
	}
	return resolvePackageDir(pos[0]), true
}

// resolvePackageDir accepts a directory, or a package name such as
// "twilio-v2" found under packages/transforms/*/* of the repository.
func resolvePackageDir(arg string) string {
	if st, err := os.Stat(arg); err == nil && st.IsDir() {
		return arg
	}
	root := repoRoot()
	matches, _ := filepath.Glob(filepath.Join(root, "packages", "transforms", "*", "*", "package.yaml"))
	for _, m := range matches {
		p, err := pack.LoadWith(filepath.Dir(m), envconf.MapLookup(nil), pack.Options{AllowMissingEnv: true})
		if err == nil && p.Meta.Name == arg {
			if rel, err := filepath.Rel(mustGetwd(), filepath.Dir(m)); err == nil {
				return rel
			}
			return filepath.Dir(m)
		}
	}
	return arg
}

func mustGetwd() string {
	d, _ := os.Getwd()
	return d
}

// repoRoot is the directory of go.work above the working directory, or ".".
func repoRoot() string {
	dir := mustGetwd()
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.work")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			return "."
		}
	}
}

func printFindings(w io.Writer, errs, warns []pack.Finding) {
	for _, f := range errs {
		fmt.Fprintf(w, "error: %s\n", f)
	}
	for _, f := range warns {
		fmt.Fprintf(w, "warning: %s\n", f)
	}
}

func packageValidate(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	allowMissing := fs.Bool("allow-missing-env", false, "treat unset {{NAME}} variables as empty (offline validation in CI)")
	dir, ok := parseDirArgs(fs, args, stderr)
	if !ok {
		return 2
	}
	p, err := pack.LoadWith(dir, lookupEnv, pack.Options{AllowMissingEnv: *allowMissing})
	var pe *pack.Error
	if errors.As(err, &pe) {
		printFindings(stdout, pe.Findings, pe.Warnings)
		fmt.Fprintf(stdout, "%s: %d error(s), %d warning(s)\n", dir, len(pe.Findings), len(pe.Warnings))
		return 1
	}
	if err != nil {
		fmt.Fprintln(stderr, "zen package validate:", err)
		return 1
	}
	printFindings(stdout, nil, p.Warnings)
	for _, v := range p.MissingEnv {
		fmt.Fprintf(stdout, "note: %s is not set (allowed by --allow-missing-env)\n", v)
	}
	if len(p.Warnings) > 0 {
		fmt.Fprintf(stdout, "%s: 0 errors, %d warning(s)\n", dir, len(p.Warnings))
		return 1
	}
	fmt.Fprintf(stdout, "%s: package %s %s is valid (%d rules, %d targets, %d flows)\n", dir, p.Meta.Name, p.Meta.Version, len(p.Rules), len(p.Targets), len(p.Flows))
	return 0
}

func packageInspect(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("inspect", flag.ContinueOnError)
	dir, ok := parseDirArgs(fs, args, stderr)
	if !ok {
		return 2
	}
	p, err := pack.LoadWith(dir, lookupEnv, pack.Options{AllowMissingEnv: true})
	var pe *pack.Error
	if errors.As(err, &pe) {
		printFindings(stdout, pe.Findings, pe.Warnings)
		return 1
	}
	if err != nil {
		fmt.Fprintln(stderr, "zen package inspect:", err)
		return 1
	}
	missing := map[string]bool{}
	for _, v := range p.MissingEnv {
		missing[v] = true
	}
	shown := func(s string) string {
		if s == "" {
			return "(unset)"
		}
		return s
	}
	fmt.Fprintf(stdout, "package %s %s (%s, %s) — %s\n\n", p.Meta.Name, p.Meta.Version, p.Meta.Provider, p.Meta.Visibility, p.Meta.Description)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ENDPOINT\tURL\tAUTH\tEVENTS")
	for _, e := range p.Endpoints {
		fmt.Fprintf(tw, "%s\t%s\t%s %s\t%s\n", e.Name, e.URL, e.Auth.Type, e.Auth.Key, strings.Join(e.Events, ", "))
	}
	fmt.Fprintln(tw, "\nTARGET\tURL\tAUTH\tEVENTS")
	for _, t := range p.Targets {
		tok := "token set"
		if t.Auth.Token == "" {
			tok = "token (unset)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s, %s\t%s\n", t.Name, shown(t.URL), t.Auth.Type, tok, strings.Join(t.Events, ", "))
	}
	fmt.Fprintln(tw, "\nFLOW\tENDPOINT → TARGET\tEVENTS")
	for _, f := range p.Flows {
		fmt.Fprintf(tw, "%s\t%s → %s\t%s\n", f.Name, f.Endpoint, f.Target, strings.Join(f.Events, ", "))
	}
	fmt.Fprintln(tw, "\nTWILIO EVENT\tZEN EVENT TYPE\tPRIORITY\tDEDUPE KEY\tRULE FILE")
	rules := append([]pack.Rule(nil), p.Rules...)
	sort.SliceStable(rules, func(i, j int) bool { return rules[i].Priority > rules[j].Priority })
	for _, r := range rules {
		key := "tw-<" + strings.Join(r.PrimaryID, "|") + ">." + r.EventType
		for _, d := range r.Discriminators {
			key += ".<" + strings.Join(d, "|") + ">"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s:%d\n", r.TwilioEvent, r.EventType, r.Priority, key, filepath.Base(r.File), r.Line)
	}
	tw.Flush()
	if len(p.MissingEnv) > 0 {
		fmt.Fprintf(stdout, "\nunset variables: %s\n", strings.Join(p.MissingEnv, ", "))
	}
	for _, w := range p.Warnings {
		fmt.Fprintf(stdout, "warning: %s\n", w)
	}
	return 0
}

// gateRow is one row of the readiness gate.
type gateRow struct {
	criterion, status, evidence string
}

const (
	statusPass       = "PASS"
	statusFail       = "FAIL"
	statusNotChecked = "NOT CHECKED"
)

func packageEvidence(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("evidence", flag.ContinueOnError)
	fixturesDir := fs.String("fixtures", "", "fixtures directory (default <repo>/fixtures/<provider>)")
	goldensDir := fs.String("goldens", "", "goldens directory (default <repo>/goldens/<provider>)")
	dir, ok := parseDirArgs(fs, args, stderr)
	if !ok {
		return 2
	}
	rows, failed := evidence(dir, *fixturesDir, *goldensDir)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CRITERION\tSTATUS\tEVIDENCE")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.criterion, r.status, r.evidence)
	}
	tw.Flush()
	if failed {
		fmt.Fprintln(stdout, "\ngate: FAIL")
		return 1
	}
	fmt.Fprintln(stdout, "\ngate: PASS (rows NOT CHECKED are outside what this command can verify)")
	return 0
}

// evidence computes the card's readiness gate; every PASS is a check run now.
func evidence(dir, fixturesDir, goldensDir string) (rows []gateRow, failed bool) {
	add := func(c, s, e string) {
		rows = append(rows, gateRow{c, s, e})
		if s == statusFail {
			failed = true
		}
	}
	p, err := pack.LoadWith(dir, lookupEnv, pack.Options{AllowMissingEnv: true})
	if err != nil {
		add("Transform package", statusFail, firstLine(err.Error()))
		return rows, true
	}
	if len(p.Warnings) > 0 {
		add("Transform package", statusFail, fmt.Sprintf("%s loads with %d warning(s): %s", filepath.Join(dir, "package.yaml"), len(p.Warnings), p.Warnings[0]))
	} else {
		add("Transform package", statusPass, filepath.Join(dir, "package.yaml")+" loads and validates")
	}
	if len(p.MissingEnv) > 0 {
		add("Package variables", statusNotChecked, "unset here: "+strings.Join(p.MissingEnv, ", "))
	}

	// Every routed event has a rule.
	var unruled []string
	routed := 0
	for _, r := range p.Routes() {
		for _, e := range r.EventTypes {
			routed++
			if _, ok := p.RuleForType(e); !ok {
				unruled = append(unruled, e)
			}
		}
	}
	if len(unruled) > 0 {
		add("Event YAML definitions", statusFail, "routed events without a rule: "+strings.Join(unruled, ", "))
	} else {
		add("Event YAML definitions", statusPass, fmt.Sprintf("%d rules in %s; all %d routed events have one", len(p.Rules), strings.Join(p.RuleFiles, ", "), routed))
	}

	root := repoRoot()
	if fixturesDir == "" {
		fixturesDir = filepath.Join(root, "fixtures", p.Meta.Provider)
	}
	if goldensDir == "" {
		goldensDir = filepath.Join(root, "goldens", p.Meta.Provider)
	}
	files, _ := fixture.List(fixturesDir)
	byEvent := map[string][]string{}
	var bad []string
	for _, f := range files {
		fx, err := fixture.Load(f)
		if err != nil {
			bad = append(bad, err.Error())
			continue
		}
		byEvent[fx.Event()] = append(byEvent[fx.Event()], f)
	}
	var noFixture []string
	for _, r := range p.Rules {
		if len(byEvent[r.TwilioEvent]) == 0 {
			noFixture = append(noFixture, r.TwilioEvent)
		}
	}
	switch {
	case len(files) == 0:
		add("Fixtures", statusFail, "no fixtures in "+fixturesDir)
	case len(bad) > 0:
		add("Fixtures", statusFail, bad[0])
	case len(noFixture) > 0:
		add("Fixtures", statusFail, "rules without a fixture: "+strings.Join(noFixture, ", "))
	default:
		add("Fixtures", statusPass, fmt.Sprintf("%d fixtures in %s cover all %d rules", len(files), fixturesDir, len(p.Rules)))
	}

	var noGolden []string
	for _, f := range files {
		g := goldenFor(goldensDir, f)
		if _, err := os.Stat(g); err != nil {
			noGolden = append(noGolden, filepath.Base(g))
		}
	}
	if len(noGolden) > 0 || len(files) == 0 {
		add("Golden outputs", statusFail, "missing: "+strings.Join(noGolden, ", "))
	} else {
		add("Golden outputs", statusPass, fmt.Sprintf("%d goldens in %s, one per fixture", len(files), goldensDir))
	}

	// The goldens pass: the same check as `go test ./pkg/transform`.
	now := time.Date(2026, 6, 24, 10, 0, 0, 0, time.UTC)
	e, err := transform.New(p, transform.WithClock(func() time.Time { return now }))
	if err != nil {
		add("Golden test validation", statusFail, err.Error())
		return rows, true
	}
	var mismatches []string
	checked := 0
	for _, f := range files {
		g := goldenFor(goldensDir, f)
		if _, err := os.Stat(g); err != nil {
			continue
		}
		checked++
		if err := transform.CheckGolden(e, f, g, now); err != nil {
			mismatches = append(mismatches, filepath.Base(g)+": "+firstLine(err.Error()))
		}
	}
	switch {
	case checked == 0:
		add("Golden test validation", statusFail, "no golden could be checked")
	case len(mismatches) > 0:
		add("Golden test validation", statusFail, strings.Join(mismatches, "; "))
	default:
		add("Golden test validation", statusPass, fmt.Sprintf("%d/%d goldens equal the engine's output (canonical JSON, clock %s)", checked, checked, now.Format(time.RFC3339)))
	}
	for _, r := range extraEvidence(p, files) {
		add(r.criterion, r.status, r.evidence)
	}
	add("Live E2E validated (TW-02)", statusNotChecked, "needs a live Twilio account: docs/e2e-runbook.md")
	return rows, failed
}

// extraEvidence holds gate rows added by other command files (signature and
// form-encoding checks); each appends a func computing its rows.
var extraEvidenceFuncs []func(p *pack.Package, fixtures []string) []gateRow

func extraEvidence(p *pack.Package, fixtures []string) []gateRow {
	var out []gateRow
	for _, f := range extraEvidenceFuncs {
		out = append(out, f(p, fixtures)...)
	}
	return out
}

func goldenFor(goldensDir, fixturePath string) string {
	return filepath.Join(goldensDir, strings.TrimSuffix(filepath.Base(fixturePath), ".json")+".golden.json")
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

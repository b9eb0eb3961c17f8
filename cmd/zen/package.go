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

	"github.com/zen-twilio/zen/pkg/envconf"
	"github.com/zen-twilio/zen/pkg/pack"
)

// lookupEnv is the environment the commands read; tests replace it.
var lookupEnv envconf.Lookup = os.LookupEnv

const packageUsage = `usage: zen package <subcommand> <dir or package name> [flags]

subcommands:
  validate  check the package (strict YAML, every problem with file:line:field)
  inspect   show its endpoints, targets, flows and rules
  evidence  the acceptance gate: fixtures, goldens, signature vectors, docs

zen package <subcommand> --help shows its flags.`

func runPackage(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && isHelp(args[0]) {
		fmt.Fprintln(stdout, packageUsage)
		return 0
	}
	if len(args) == 0 {
		fmt.Fprintln(stderr, packageUsage)
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
// argument, the package directory (or a package name under
// packages/transforms). When it returns ok false, the command exits with
// code (0 after --help).
func parseDirArgs(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) (dir string, code int, ok bool) {
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: zen package %s <dir or package name> [flags]\n\nflags:\n", fs.Name())
		fs.PrintDefaults()
	}
	var pos []string
	for len(args) > 0 {
		if code, ok := parseFlags(fs, args, stdout, stderr); !ok {
			return "", code, false
		}
		args = fs.Args()
		if len(args) > 0 {
			pos = append(pos, args[0])
			args = args[1:]
		}
	}
	if len(pos) != 1 {
		fs.SetOutput(stderr)
		fs.Usage()
		return "", 2, false
	}
	return resolvePackageDir(pos[0]), 0, true
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
	dir, code, ok := parseDirArgs(fs, args, stdout, stderr)
	if !ok {
		return code
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
	dir, code, ok := parseDirArgs(fs, args, stdout, stderr)
	if !ok {
		return code
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

func goldenFor(goldensDir, fixturePath string) string {
	return filepath.Join(goldensDir, strings.TrimSuffix(filepath.Base(fixturePath), ".json")+".golden.json")
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

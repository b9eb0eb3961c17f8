package main

import (
	"slices"
	"strings"
	"testing"
)

// commandPaths are every command and subcommand of groups, e.g. ["package"]
// and ["package", "validate"].
func commandPaths() [][]string {
	var paths [][]string
	for name, g := range groups {
		paths = append(paths, []string{name})
		for _, sub := range g.subs {
			paths = append(paths, []string{name, sub})
		}
	}
	slices.SortFunc(paths, func(a, b []string) int { return strings.Compare(strings.Join(a, " "), strings.Join(b, " ")) })
	return paths
}

// --help, -h and help on every command and subcommand print a usage on
// stdout and exit 0; nothing runs, nothing goes to stderr.
func TestHelpOnEveryCommand(t *testing.T) {
	t.Parallel()
	cases := [][]string{{"--help"}, {"-h"}, {"help"}, {"help", "send"}}
	for _, p := range commandPaths() {
		cases = append(cases, append(slices.Clone(p), "--help"), append(slices.Clone(p), "-h"))
		if len(groups[p[0]].subs) > 0 && len(p) == 1 {
			cases = append(cases, append(slices.Clone(p), "help"))
		}
	}
	for _, args := range cases {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := runZen(t, args...)
			if code != 0 || stderr != "" {
				t.Errorf("exit %d, stderr %q; want 0 and nothing", code, stderr)
			}
			if !strings.HasPrefix(stdout, "usage:") {
				t.Errorf("stdout does not start with a usage:\n%s", stdout)
			}
			if len(args) > 1 && args[len(args)-1] != "help" && args[0] != "help" && !strings.Contains(stdout, args[len(args)-2]) {
				t.Errorf("the usage does not name %q:\n%s", args[len(args)-2], stdout)
			}
		})
	}
}

// Misuse of every command and subcommand prints on stderr and exits 2.
func TestMisuseExits2OnStderr(t *testing.T) {
	t.Parallel()
	cases := [][]string{{}, {"bogus"}}
	for _, p := range commandPaths() {
		cases = append(cases, append(slices.Clone(p), "--bogus"))
	}
	for _, args := range cases {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := runZen(t, args...)
			if code != 2 || stdout != "" || stderr == "" {
				t.Errorf("exit %d, stdout %q, stderr %q; want 2, nothing, and a message", code, stdout, stderr)
			}
		})
	}
}

// Command zen is the operator CLI of zen-twilio: validate, inspect and
// evidence for the transform package; apply the JetStream objects; send
// signed test webhooks; replay dead letters and stored requests; and run the
// whole pipeline locally (zen dev).
//
// Exit codes: 0 ok, 1 findings or failure, 2 usage. `--help` (or -h, or
// help) on any command or subcommand prints its usage on stdout and exits 0;
// misuse prints the usage on stderr and exits 2.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

// version is set at build time (-ldflags -X main.version=…).
var version = "dev"

// command runs one command group with its arguments and returns the exit code.
type command func(ctx context.Context, args []string, stdout, stderr io.Writer) int

// groups is the dispatch table: one line per command group, each in its own
// file, with its subcommands (the help test walks them all).
var groups = map[string]struct {
	run  command
	help string
	subs []string
}{
	"package": {runPackage, "validate | inspect | evidence a transform package", []string{"validate", "inspect", "evidence"}},
	"streams": {runStreams, "apply the JetStream streams, consumers and KV bucket", []string{"apply"}},
	"dev":     {runDev, "run the whole pipeline locally on an embedded NATS server", nil},
	"send":    {runSend, "sign and send test webhooks (fixtures), or generate load", nil},
	"replay":  {runReplay, "replay dead letters, stored raw requests, or one event", []string{"dlq", "raw", "event"}},
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	switch {
	case len(args) == 0:
		usage(stderr)
		return 2
	case isHelp(args[0]) && len(args) > 1:
		return run(ctx, []string{args[1], "--help"}, stdout, stderr) // zen help <command>
	case isHelp(args[0]):
		usage(stdout)
		return 0
	}
	if args[0] == "version" || args[0] == "--version" {
		fmt.Fprintln(stdout, "zen", version)
		return 0
	}
	g, ok := groups[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "zen: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	return g.run(ctx, args[1:], stdout, stderr)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: zen <command> [arguments]\n\ncommands:")
	names := make([]string, 0, len(groups))
	for n := range groups {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-8s %s\n", n, groups[n].help)
	}
	fmt.Fprintln(w, "  version  print the version")
}

// isHelp reports whether arg asks for the usage.
func isHelp(arg string) bool {
	return arg == "-h" || arg == "-help" || arg == "--help" || arg == "help"
}

// parseFlags parses args into fs. With --help or -h it prints fs's usage
// on stdout and returns 0, false; with a bad flag it prints the error and
// the usage on stderr and returns 2, false. fs.Usage must write to
// fs.Output().
func parseFlags(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) (code int, ok bool) {
	var buf bytes.Buffer
	fs.SetOutput(&buf)
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fs.SetOutput(stdout)
		fs.Usage()
		return 0, false
	case err != nil:
		_, _ = stderr.Write(buf.Bytes())
		return 2, false
	}
	fs.SetOutput(stderr) // later usage errors of the command
	return 0, true
}

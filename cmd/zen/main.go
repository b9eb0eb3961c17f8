// Command zen is the operator CLI of zen-twilio: validate, inspect and
// evidence for the transform package; apply the JetStream objects; send
// signed test webhooks; replay dead letters and stored requests; and run the
// whole pipeline locally (zen dev).
//
// Exit codes: 0 ok, 1 findings or failure, 2 usage.
package main

import (
	"context"
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

// groups is the dispatch table: one line per command group, each in its own file.
var groups = map[string]struct {
	run  command
	help string
}{
	"package": {runPackage, "validate | inspect | evidence a transform package"},
	"streams": {runStreams, "apply the JetStream streams, consumers and KV bucket"},
	"dev":     {runDev, "run the whole pipeline locally on an embedded NATS server"},
	"send":    {runSend, "sign and send test webhooks (fixtures), or generate load"},
	"replay":  {runReplay, "replay dead letters, stored raw requests, or one event"},
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		return 2
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

// Package servicemain is the main function the three services share: the
// command line (--help lists the variables the service reads, --version),
// GC defaults, SIGINT/SIGTERM as context cancellation, the zap logger from
// LOG_LEVEL, and exit codes an operator can act on:
//
//	0  stopped cleanly (SIGINT or SIGTERM), or --help / --version
//	1  failed while running: one plain line on stderr says why
//	2  usage or configuration error (the variables, or the transform
//	   package and its {{NAME}} variables): one plain line per problem
//
// Configuration errors and run-time failures are printed as plain text, not
// as a zap "fatal" JSON record with a stack trace (issue 27): they are read
// by a person at a terminal or in `kubectl logs`, and each names the
// variable to fix.
package servicemain

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"

	"go.uber.org/zap"

	"github.com/zen-twilio/zen/pkg/envconf"
	"github.com/zen-twilio/zen/pkg/gctune"
	"github.com/zen-twilio/zen/pkg/logging"
	"github.com/zen-twilio/zen/pkg/pack"
)

// Exit codes of a service binary.
const (
	ExitOK     = 0
	ExitFailed = 1
	ExitUsage  = 2
)

// Service describes one service binary to [Main]. C is its Config type.
type Service[C any] struct {
	// Name is the binary's name, e.g. "ingester"; it prefixes every line
	// the service prints outside its log.
	Name string
	// Summary is one sentence for --help: what the service does.
	Summary string
	// Version is the build's version (-ldflags -X main.version=…).
	Version string
	// Vars are the environment variables the service reads: its
	// ConfigVars(), the list its configuration is read with.
	Vars []string
	// Help holds a one-line description of variables, by name; a variable
	// without one is listed by name alone.
	Help map[string]string
	// Note, when set, ends the variable list in --help (e.g. the package's
	// {{NAME}} variables the forwarder also reads).
	Note string
	// Config reads and validates the configuration; its error lists every
	// problem, one per line, each naming its variable.
	Config func(envconf.Lookup) (C, error)
	// Run runs the service until ctx ends (SIGINT, SIGTERM) and returns
	// nil after a clean shutdown.
	Run func(ctx context.Context, cfg C, log *zap.Logger) error
}

// Main runs s with the process's arguments and environment and exits with
// its exit code. It does not return.
func Main[C any](s Service[C]) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := s.main(ctx, os.Args[1:], envconf.OS, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// main is Main without the process: tests call it with their own
// arguments, lookup and writers.
func (s Service[C]) main(ctx context.Context, args []string, lookup envconf.Lookup, stdout, stderr io.Writer) int {
	if code, done := s.parseArgs(args, stdout, stderr); done {
		return code
	}
	if err := gctune.Apply(); err != nil {
		s.printErr(stderr, err)
		return ExitUsage
	}
	cfg, err := s.Config(lookup)
	r := envconf.New(lookup)
	logger, lerr := logging.New(r.String("LOG_LEVEL", "info"), false)
	profile := r.String("CPU_PROFILE", "")
	if err := errors.Join(err, lerr); err != nil {
		s.printErr(stderr, err)
		return ExitUsage
	}
	defer func() { _ = logger.Sync() }()
	if profile != "" {
		stopProfile, err := startCPUProfile(profile)
		if err != nil {
			s.printErr(stderr, fmt.Errorf("env var `CPU_PROFILE`: %w", err))
			return ExitUsage
		}
		defer stopProfile()
	}
	if err := s.run(ctx, cfg, logger); err != nil {
		s.printErr(stderr, err)
		if isConfigError(err) {
			return ExitUsage
		}
		return ExitFailed
	}
	return ExitOK
}

// isConfigError reports whether err, returned while starting, is a fault
// of the configuration rather than of the run: the transform package (its
// file, or a {{NAME}} variable it reads) is part of the configuration.
func isConfigError(err error) bool {
	var pe *pack.Error
	return errors.As(err, &pe)
}

// run calls s.Run and turns a panic into an error, logging its stack.
func (s Service[C]) run(ctx context.Context, cfg C, logger *zap.Logger) (err error) {
	defer func() {
		if r := recover(); r != nil {
			logger.Error("panic", zap.Any("panic", r), zap.Stack("stack"))
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return s.Run(ctx, cfg, logger)
}

// parseArgs handles the command line: --help and --version print on stdout
// and end the program with 0; anything else than no argument at all is a
// usage error (the configuration is the environment, not flags).
func (s Service[C]) parseArgs(args []string, stdout, stderr io.Writer) (code int, done bool) {
	fs := flag.NewFlagSet(s.Name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	version := fs.Bool("version", false, "print the version and exit")
	switch err := fs.Parse(args); {
	case errors.Is(err, flag.ErrHelp):
		s.usage(stdout)
		return ExitOK, true
	case err != nil:
		fmt.Fprintf(stderr, "%s: %v\n", s.Name, err)
		s.shortUsage(stderr)
		return ExitUsage, true
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "%s: unexpected argument %q: the configuration is read from environment variables\n", s.Name, fs.Arg(0))
		s.shortUsage(stderr)
		return ExitUsage, true
	case *version:
		fmt.Fprintf(stdout, "%s %s (%s, %s/%s)\n", s.Name, s.Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return ExitOK, true
	}
	return 0, false
}

// shortUsage is the usage of a usage error: the synopsis and where the
// rest is.
func (s Service[C]) shortUsage(w io.Writer) {
	fmt.Fprintf(w, "usage: %s [--help] [--version]\n(%s --help lists the environment variables it reads)\n", s.Name, s.Name)
}

// usage prints the synopsis, the summary and every variable the service
// reads with its description.
func (s Service[C]) usage(w io.Writer) {
	fmt.Fprintf(w, "usage: %s [--help] [--version]\n\n%s\n\n", s.Name, s.Summary)
	fmt.Fprintln(w, "Configuration is read from these environment variables (docs/configuration.md):")
	vars := s.variables()
	width := 0
	for _, v := range vars {
		width = max(width, len(v))
	}
	for _, v := range vars {
		if d := s.describe(v); d != "" {
			fmt.Fprintf(w, "  %-*s  %s\n", width, v, d)
		} else {
			fmt.Fprintf(w, "  %s\n", v)
		}
	}
	if s.Note != "" {
		fmt.Fprintf(w, "\n%s\n", s.Note)
	}
	fmt.Fprintln(w, "\nexit status: 0 stopped cleanly (SIGINT, SIGTERM), 1 failed while running, 2 usage or configuration error")
}

// variables are s.Vars and the ones Main itself reads, sorted, once each.
func (s Service[C]) variables() []string {
	vars := append(slices.Clone(s.Vars), MainVars...)
	slices.Sort(vars)
	return slices.Compact(vars)
}

// describe returns the service's description of v, else the shared one.
func (s Service[C]) describe(v string) string {
	if d, ok := s.Help[v]; ok {
		return d
	}
	return SharedHelp[v]
}

// printErr prints err on stderr, one line per problem, each prefixed with
// the service's name: a joined error's parts are on lines of their own.
func (s Service[C]) printErr(w io.Writer, err error) {
	for line := range strings.SplitSeq(err.Error(), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			fmt.Fprintf(w, "%s: %s\n", s.Name, line)
		}
	}
}

// startCPUProfile writes a Go CPU profile to path until the returned
// function is called (at exit, after a clean shutdown).
func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); _ = f.Close() }, nil
}

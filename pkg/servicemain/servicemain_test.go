package servicemain

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/zen-twilio/zen/pkg/envconf"
	"github.com/zen-twilio/zen/pkg/pack"
)

type testConfig struct{ Greeting string }

// testService is a service whose Config and Run are the test's closures.
func testService(config func(envconf.Lookup) (testConfig, error), run func(context.Context, testConfig, *zap.Logger) error) Service[testConfig] {
	if config == nil {
		config = func(envconf.Lookup) (testConfig, error) { return testConfig{Greeting: "hi"}, nil }
	}
	if run == nil {
		run = func(context.Context, testConfig, *zap.Logger) error { return nil }
	}
	return Service[testConfig]{
		Name: "greeter", Summary: "greeter greets.", Version: "v1.2.3",
		Vars: []string{"GREETING", "NATS_URL"}, Help: map[string]string{"GREETING": "what to say"},
		Config: config, Run: run,
	}
}

func runMain(t *testing.T, s Service[testConfig], env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = s.main(t.Context(), args, envconf.MapLookup(env), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestHelpAndVersionPrintOnStdout(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"--help", []string{"--help"}, []string{"usage: greeter", "greeter greets.", "GREETING     what to say", "NATS_URL     NATS server URL(s)", "CPU_PROFILE", "LOG_LEVEL", "exit status: 0"}},
		{"-h", []string{"-h"}, []string{"usage: greeter"}},
		{"-help", []string{"-help"}, []string{"usage: greeter"}},
		{"--version", []string{"--version"}, []string{"greeter v1.2.3 (go"}},
		{"-version", []string{"-version"}, []string{"greeter v1.2.3 (go"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ran := false
			s := testService(nil, func(context.Context, testConfig, *zap.Logger) error { ran = true; return nil })
			code, stdout, stderr := runMain(t, s, nil, tc.args...)
			if code != ExitOK || stderr != "" {
				t.Errorf("exit %d, stderr %q; want 0 and nothing", code, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stdout, w) {
					t.Errorf("stdout does not contain %q:\n%s", w, stdout)
				}
			}
			if ran {
				t.Error("the service ran")
			}
		})
	}
}

func TestUsageErrorsExit2OnStderr(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"--bogus"}, "greeter: flag provided but not defined: -bogus"},
		{"argument", []string{"serve"}, `greeter: unexpected argument "serve": the configuration is read from environment variables`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := runMain(t, testService(nil, nil), nil, tc.args...)
			if code != ExitUsage || stdout != "" {
				t.Errorf("exit %d, stdout %q; want 2 and nothing", code, stdout)
			}
			if !strings.HasPrefix(stderr, tc.want+"\n") || !strings.Contains(stderr, "usage: greeter") {
				t.Errorf("stderr = %q, want %q then the usage", stderr, tc.want)
			}
		})
	}
}

// Every configuration problem is a line of its own naming its variable;
// a bad LOG_LEVEL is one of them. Nothing runs.
func TestConfigErrorsArePlainLines(t *testing.T) {
	t.Parallel()
	s := testService(func(envconf.Lookup) (testConfig, error) {
		r := envconf.New(nil)
		r.Fail("GREETING", "is required")
		return testConfig{}, errors.Join(r.Err(), errors.New("env var `NATS_URL` must be nats://host:port URLs"))
	}, func(context.Context, testConfig, *zap.Logger) error { t.Error("the service ran"); return nil })
	code, stdout, stderr := runMain(t, s, map[string]string{"LOG_LEVEL": "loud"})
	want := "greeter: env var `GREETING` is required\n" +
		"greeter: env var `NATS_URL` must be nats://host:port URLs\n" +
		"greeter: env var `LOG_LEVEL` must be debug, info, warn or error, got \"loud\"\n"
	if code != ExitUsage || stdout != "" || stderr != want {
		t.Errorf("exit %d, stdout %q, stderr:\n%s\nwant 2, nothing, and:\n%s", code, stdout, stderr, want)
	}
}

func TestRunOutcomes(t *testing.T) {
	t.Parallel()
	pkgErr := &pack.Error{Findings: []pack.Finding{{Severity: pack.SeverityError, File: "package.yaml", Line: 46, Field: "targets[0].url", Msg: "want an absolute http(s) URL"}}}
	for _, tc := range []struct {
		name     string
		run      func(context.Context, testConfig, *zap.Logger) error
		code     int
		stderr   string
		inStderr string
	}{
		{name: "clean stop", run: func(_ context.Context, c testConfig, _ *zap.Logger) error {
			if c.Greeting != "hi" {
				return fmt.Errorf("config not passed: %+v", c)
			}
			return nil
		}, code: ExitOK},
		{name: "failure", run: func(context.Context, testConfig, *zap.Logger) error {
			return errors.New("env var `LISTEN_ADDR`: listen tcp :8080: bind: address already in use")
		}, code: ExitFailed, stderr: "greeter: env var `LISTEN_ADDR`: listen tcp :8080: bind: address already in use\n"},
		{name: "package error", run: func(context.Context, testConfig, *zap.Logger) error {
			return fmt.Errorf("load package p: %w", pkgErr)
		}, code: ExitUsage, stderr: "greeter: load package p: package.yaml:46: targets[0].url: want an absolute http(s) URL\n"},
		{name: "panic", run: func(context.Context, testConfig, *zap.Logger) error { panic("boom") },
			code: ExitFailed, inStderr: "greeter: panic: boom\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := runMain(t, testService(nil, tc.run), nil)
			if code != tc.code || stdout != "" {
				t.Errorf("exit %d, stdout %q; want %d and nothing", code, stdout, tc.code)
			}
			if tc.inStderr != "" {
				if !strings.Contains(stderr, tc.inStderr) {
					t.Errorf("stderr %q does not contain %q", stderr, tc.inStderr)
				}
			} else if stderr != tc.stderr {
				t.Errorf("stderr = %q, want %q", stderr, tc.stderr)
			}
		})
	}
}

// Every description names a variable some service reads, or one Main reads.
func TestSharedHelpHasNoStrayVariable(t *testing.T) {
	t.Parallel()
	if _, ok := SharedHelp["CPU_PROFILE"]; !ok {
		t.Error("CPU_PROFILE, read by Main, has no description")
	}
	for v, d := range SharedHelp {
		if d == "" || strings.Contains(d, "\n") {
			t.Errorf("%s: description %q must be one line", v, d)
		}
	}
}

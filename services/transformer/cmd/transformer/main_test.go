package main

import (
	"strings"
	"testing"

	"github.com/zen-twilio/zen/pkg/servicemain/servicetest"
	"github.com/zen-twilio/zen/services/transformer"
)

// bin is the transformer binary, built once by TestMain.
var bin string

func TestMain(m *testing.M) { servicetest.Main(m, "transformer", &bin) }

func TestCommandLine(t *testing.T) {
	servicetest.CheckCommandLine(t, bin, "transformer", transformer.ConfigVars(), help)
}

func TestBadConfigurationExits2WithPlainLines(t *testing.T) {
	code, stdout, stderr := servicetest.Run(t, bin, map[string]string{
		"TRANSFORMER_CONCURRENCY": "0", "TRANSFORMER_REDACT_KEY": "short", "NATS_URL": "http://nats:4222", "LOG_LEVEL": "chatty",
	})
	if code != 2 || stdout != "" {
		t.Errorf("exit %d, stdout %q; want 2 and nothing", code, stdout)
	}
	servicetest.CheckPlainErrors(t, "transformer", stderr,
		"transformer: env var `TRANSFORMER_CONCURRENCY` must be >= 1, got 0",
		"transformer: env var `TRANSFORMER_REDACT_KEY` must be at least 32 bytes",
		`transformer: env var `+"`NATS_URL`"+` must be nats://host:port URLs, comma-separated (or tls://, ws://, wss://), got "http://nats:4222"`,
		"transformer: env var `LOG_LEVEL` must be debug, info, warn or error")
	if strings.Contains(stderr, "short") {
		t.Error("the redact key is in the error")
	}
}

// NATS unreachable: said with the URL, /readyz 503; SIGTERM stops it
// cleanly (exit 0, no stack trace).
func TestSIGTERMWithoutNATSExits0(t *testing.T) {
	servicetest.CheckSIGTERMWithoutNATS(t, bin, map[string]string{
		"PACKAGE_DIR": servicetest.RepoPath(t, "packages/transforms/twilio/v1"),
	})
}

package main

import (
	"testing"

	"github.com/zen-twilio/zen/pkg/servicemain/servicetest"
	"github.com/zen-twilio/zen/services/forwarder"
)

// bin is the forwarder binary, built once by TestMain.
var bin string

func TestMain(m *testing.M) { servicetest.Main(m, "forwarder", &bin) }

func TestCommandLine(t *testing.T) {
	servicetest.CheckCommandLine(t, bin, "forwarder", forwarder.ConfigVars(), help)
}

func TestBadConfigurationExits2WithPlainLines(t *testing.T) {
	code, stdout, stderr := servicetest.Run(t, bin, map[string]string{
		"FORWARDER_HTTP_TIMEOUT": "1m", "FORWARDER_CONCURRENCY": "many",
	})
	if code != 2 || stdout != "" {
		t.Errorf("exit %d, stdout %q; want 2 and nothing", code, stdout)
	}
	servicetest.CheckPlainErrors(t, "forwarder", stderr,
		"forwarder: env var `FORWARDER_CONCURRENCY` must be an integer, got \"many\"",
		"forwarder: env var `FORWARDER_HTTP_TIMEOUT` must be > 0 and shorter than FORWARDER_ACK_WAIT")
}

// COMMS_WAREHOUSE_URL=warehouse is refused at start (exit 2), naming the
// variable and where the package uses it; so is any non-absolute URL.
func TestWarehouseURLMustBeAbsolute(t *testing.T) {
	for _, u := range []string{"warehouse", "warehouse.example.com/v1/events", "ftp://warehouse/events"} {
		t.Run(u, func(t *testing.T) {
			code, stdout, stderr := servicetest.Run(t, bin, map[string]string{
				"PACKAGE_DIR": servicetest.RepoPath(t, "packages/transforms/twilio/v1"), "NATS_URL": "nats://" + servicetest.FreeAddr(t),
				"COMMS_WAREHOUSE_URL": u, "COMMS_WAREHOUSE_TOKEN": "forwarder-cmd-test-token", "LOG_LEVEL": "error",
			})
			if code != 2 || stdout != "" {
				t.Errorf("exit %d, stdout %q; want 2 and nothing", code, stdout)
			}
			servicetest.CheckPlainErrors(t, "forwarder", stderr,
				"package.yaml:", "targets[0].url: want an absolute http(s) URL with a host",
				`got "`+u+"\", from `COMMS_WAREHOUSE_URL`")
		})
	}
}

// NATS unreachable: said with the URL, /readyz 503; SIGTERM stops it
// cleanly (exit 0, no stack trace).
func TestSIGTERMWithoutNATSExits0(t *testing.T) {
	servicetest.CheckSIGTERMWithoutNATS(t, bin, map[string]string{
		"PACKAGE_DIR":         servicetest.RepoPath(t, "packages/transforms/twilio/v1"),
		"COMMS_WAREHOUSE_URL": "http://127.0.0.1:9/events", "COMMS_WAREHOUSE_TOKEN": "forwarder-cmd-test-token",
	})
}

package main

import (
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/zen-twilio/zen/pkg/servicemain/servicetest"
	"github.com/zen-twilio/zen/services/forwarder"
)

// bin is the forwarder binary, built once by TestMain.
var bin string

func TestMain(m *testing.M) { servicetest.Main(m, "forwarder", &bin) }

func TestCommandLine(t *testing.T) {
	servicetest.CheckCommandLine(t, bin, "forwarder", forwarder.ConfigVars())
}

// Every description of help names a variable the forwarder reads.
func TestHelpDescribesReadVariables(t *testing.T) {
	vars := forwarder.ConfigVars()
	for v := range help {
		if !slices.Contains(vars, v) {
			t.Errorf("help describes %s, which the forwarder does not read", v)
		}
	}
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
	natsAddr, addr := servicetest.FreeAddr(t), servicetest.FreeAddr(t)
	p := servicetest.Start(t, bin, map[string]string{
		"PACKAGE_DIR": servicetest.RepoPath(t, "packages/transforms/twilio/v1"), "LISTEN_ADDR": addr, "NATS_URL": "nats://" + natsAddr,
		"COMMS_WAREHOUSE_URL": "http://127.0.0.1:9/events", "COMMS_WAREHOUSE_TOKEN": "forwarder-cmd-test-token",
	})
	p.WaitFor(t, "cannot reach NATS at nats://"+natsAddr+": connection refused; retrying in ", 10*time.Second)
	if code, err := servicetest.Status("http://" + addr + "/readyz"); err != nil || code != 503 {
		t.Errorf("/readyz without NATS = %d, %v; want 503", code, err)
	}
	p.Signal(t, syscall.SIGTERM)
	if code := p.Wait(t, 30*time.Second); code != 0 {
		t.Errorf("exit %d after SIGTERM, want 0; stderr:\n%s", code, p.Stderr())
	}
	servicetest.CheckNoCrash(t, p.Stderr())
}

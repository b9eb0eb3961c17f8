package main

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zen-twilio/zen/pkg/fixture"
	"github.com/zen-twilio/zen/pkg/natsembed"
	"github.com/zen-twilio/zen/pkg/natstest"
	"github.com/zen-twilio/zen/pkg/sender"
	"github.com/zen-twilio/zen/pkg/servicemain/servicetest"
	"github.com/zen-twilio/zen/services/ingester"
)

const testToken = "ingester-cmd-test-token-not-a-secret"

// bin is the ingester binary, built once by TestMain.
var bin string

func TestMain(m *testing.M) { servicetest.Main(m, "ingester", &bin) }

func TestCommandLine(t *testing.T) {
	servicetest.CheckCommandLine(t, bin, "ingester", ingester.ConfigVars(), help)
}

// A bad configuration: every problem on a plain line naming its variable,
// exit 2, nothing started.
func TestBadConfigurationExits2WithPlainLines(t *testing.T) {
	code, stdout, stderr := servicetest.Run(t, bin, map[string]string{
		"PUBLIC_URL": "hooks.example.com", "MAX_BODY_BYTES": "-1", "NATS_URL": "nats:4222", "PUBLISH_TIMEOUT": "soon",
	})
	if code != 2 || stdout != "" {
		t.Errorf("exit %d, stdout %q; want 2 and nothing", code, stdout)
	}
	servicetest.CheckPlainErrors(t, "ingester", stderr,
		"ingester: env var `PUBLIC_URL` must be an absolute http(s) URL",
		"ingester: env var `MAX_BODY_BYTES` must be > 0, got -1",
		"ingester: env var `NATS_URL` must be nats://host:port URLs",
		"ingester: env var `PUBLISH_TIMEOUT` must be a duration",
		"ingester: env var `TWILIO_AUTH_TOKEN` is required")
	if n := strings.Count(stderr, "\n"); n != 5 {
		t.Errorf("%d lines, want one per problem (5):\n%s", n, stderr)
	}
}

// A failure at run time (the port taken) is one plain line and exit 1.
func TestRunFailureExits1WithOneLine(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	code, _, stderr := servicetest.Run(t, bin, map[string]string{
		"PUBLIC_URL": "http://127.0.0.1", "TWILIO_AUTH_TOKEN": testToken, "LISTEN_ADDR": ln.Addr().String(),
		"NATS_URL": "nats://" + servicetest.FreeAddr(t), "LOG_LEVEL": "error",
	})
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if want := "ingester: env var `LISTEN_ADDR`: listen tcp " + ln.Addr().String() + ": bind: address already in use\n"; stderr != want {
		t.Errorf("stderr = %q, want %q", stderr, want)
	}
}

// Started before NATS: the ingester says it cannot reach NATS at the URL
// (credentials redacted) and retries, /readyz is 503; once a real server
// comes up on that URL it connects, /readyz turns 200, a signed webhook is
// stored (200), and SIGTERM stops it cleanly (exit 0).
func TestStartsBeforeNATSAndProceedsWhenItComesUp(t *testing.T) {
	natsAddr, addr := servicetest.FreeAddr(t), servicetest.FreeAddr(t)
	p := servicetest.Start(t, bin, map[string]string{
		"PUBLIC_URL": "http://" + addr, "TWILIO_AUTH_TOKEN": testToken, "LISTEN_ADDR": addr,
		"NATS_URL": "nats://ingester:nats-pw-not-a-secret@" + natsAddr,
	})
	p.WaitFor(t, "cannot reach NATS at nats://ingester:xxxxx@"+natsAddr+": connection refused; retrying in ", 10*time.Second)
	if strings.Contains(p.Stderr(), "nats-pw-not-a-secret") {
		t.Error("the NATS password is in the log")
	}
	if code, err := servicetest.Status("http://" + addr + "/readyz"); err != nil || code != 503 {
		t.Errorf("/readyz without NATS = %d, %v; want 503", code, err)
	}

	_, port, _ := net.SplitHostPort(natsAddr)
	n, _ := strconv.Atoi(port)
	ns, err := natsembed.Start(natsembed.Options{Port: n, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	natstest.CheckFor(t, 20*time.Second, func() error {
		if code, err := servicetest.Status("http://" + addr + "/readyz"); err != nil || code != 200 {
			return fmt.Errorf("/readyz = %d, %v", code, err)
		}
		return nil
	})
	p.WaitFor(t, "connected to NATS at nats://ingester:xxxxx@"+natsAddr, time.Second)

	f, err := fixture.Load(servicetest.RepoPath(t, "fixtures/twilio/incoming_sms.json"))
	if err != nil {
		t.Fatal(err)
	}
	req, err := sender.Build(f, "http://"+addr+"/webhooks/twilio", testToken, "", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if resp := sender.Send(t.Context(), sender.Client(1, 10*time.Second), req); resp.Err != nil || resp.Status != 200 {
		t.Fatalf("webhook: %d, %v: %s", resp.Status, resp.Err, resp.Body)
	}

	p.Signal(t, syscall.SIGTERM)
	if code := p.Wait(t, 30*time.Second); code != 0 {
		t.Errorf("exit %d after SIGTERM, want 0; stderr:\n%s", code, p.Stderr())
	}
	servicetest.CheckNoCrash(t, p.Stderr())
}

// SIGTERM while NATS was never reachable: a clean stop, exit 0.
func TestSIGTERMWithoutNATSExits0(t *testing.T) {
	servicetest.CheckSIGTERMWithoutNATS(t, bin, map[string]string{
		"PUBLIC_URL": "https://hooks.example.com", "TWILIO_AUTH_TOKEN": testToken,
	})
}

package deploy

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zen-twilio/zen/pkg/streams"
)

// natsCLI finds the nats CLI the runbook lines name: $ZEN_NATS_CLI or
// ../bin/nats (built by `make tools` from tools/go.mod).
func natsCLI(tb testing.TB) string {
	tb.Helper()
	p := os.Getenv("ZEN_NATS_CLI")
	if p == "" {
		p, _ = filepath.Abs("../bin/nats")
	}
	if _, err := os.Stat(p); err != nil {
		tb.Fatalf("no nats CLI at %s: run `make tools` at the repository root or set ZEN_NATS_CLI", p)
	}
	return p
}

// cliCommand matches a `nats …` command quoted in a runbook line, also
// after `kubectl exec … --`.
var cliCommand = regexp.MustCompile("`(?:[^`]*-- )?(nats [^`]+)`")

// kubectlExec matches the target of a `kubectl exec -it <target> --`.
var kubectlExec = regexp.MustCompile(`kubectl exec -it (\S+) --`)

// toolsExecTarget returns the `kubectl exec` target of the operator's
// shell deploy/k8s/tools ships: "<name>" for a Pod, "deploy/<name>" for a
// Deployment.
func toolsExecTarget(t *testing.T) string {
	t.Helper()
	for _, o := range mustRender(t, "tools").Objects {
		switch o.Kind {
		case "Pod":
			return o.Name
		case "Deployment":
			return "deploy/" + o.Name
		}
	}
	t.Fatal("deploy/k8s/tools ships no Pod or Deployment")
	return ""
}

// runbookCommands returns the nats CLI commands quoted in the prod alerts'
// descriptions and in docs/capacity.md, each with where it was found.
func runbookCommands(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	pr := one[*PrometheusRule](t, mustRender(t, "prod"), "zen-twilio")
	for _, g := range pr.Spec.Groups {
		for _, rule := range g.Rules {
			for _, m := range cliCommand.FindAllStringSubmatch(rule.Annotations["description"], -1) {
				out[m[1]] = "alert " + rule.Alert
			}
		}
	}
	b, err := os.ReadFile("../docs/capacity.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range cliCommand.FindAllStringSubmatch(strings.Join(strings.Fields(string(b)), " "), -1) {
		out[m[1]] = "docs/capacity.md"
	}
	return out
}

// TestRunbookCommandsRun: every nats CLI command a capacity alert or
// docs/capacity.md tells the on-call engineer to run works, as the user
// nats-box connects as (admin), against a real server with the shipped
// auth.conf and the prod streams, consumers and bucket.
func TestRunbookCommandsRun(t *testing.T) {
	cli := natsCLI(t)
	url := startNATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	nc, _ := connectAs(t, url, "provisioner")
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	cfg, tset, fset := jobSettings(t)
	if err := streams.Apply(ctx, js, cfg); err != nil {
		t.Fatal(err)
	}
	if err := streams.ApplyConsumers(ctx, js, tset, fset, routes(t)); err != nil {
		t.Fatal(err)
	}
	admin, _ := connectAs(t, url, "admin")
	if err := admin.Publish("zen.dlq.transformer.missing_required", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	_ = admin.Flush()

	// A `kubectl exec` names the operator's shell as deploy/k8s/tools ships it:
	// a bare Pod, so `deploy/nats-box` would not be found.
	pod := toolsExecTarget(t)
	pr := one[*PrometheusRule](t, mustRender(t, "prod"), "zen-twilio")
	for _, g := range pr.Spec.Groups {
		for _, rule := range g.Rules {
			for _, m := range kubectlExec.FindAllStringSubmatch(rule.Annotations["description"], -1) {
				if m[1] != pod {
					t.Errorf("alert %s: `kubectl exec` names %q; deploy/k8s/tools ships %q", rule.Alert, m[1], pod)
				}
			}
		}
	}

	cmds := runbookCommands(t)
	if len(cmds) < 5 {
		t.Fatalf("found only %d nats commands in the runbook lines: %v", len(cmds), cmds)
	}
	for cmd, where := range cmds {
		args := append(strings.Fields(strings.TrimPrefix(cmd, "nats ")), "--timeout", "10s")
		c := exec.CommandContext(ctx, cli, args...)
		c.Env = []string{"HOME=" + t.TempDir(), "NATS_URL=" + url, "NATS_USER=admin", "NATS_PASSWORD=" + testPassword("admin")}
		c.Stdin = strings.NewReader("")
		out, err := c.CombinedOutput()
		if err != nil {
			t.Errorf("%s: `%s` fails: %v\n%s", where, cmd, err, out)
		}
	}
}

package deploy

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	corev1 "k8s.io/api/core/v1"

	"github.com/zen-twilio/zen/pkg/streams"
	"github.com/zen-twilio/zen/pkg/zen"
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

// runbookDocs are the pages whose nats commands an operator is told to run:
// the cluster's (nats-box) and the local ones (`make run`, bin/nats).
var runbookDocs = []string{"k8s/README.md", "../docs/capacity.md", "../docs/troubleshooting.md", "../docs/e2e-runbook.md"}

var (
	// inlineCommand matches a `nats …` command quoted in a line, also as
	// bin/nats and after `kubectl exec … --`.
	inlineCommand = regexp.MustCompile("`(?:[^`]*-- |bin/)?(nats [^`]+)`")
	// blockCommand matches a command line of a code block, with its comment.
	blockCommand = regexp.MustCompile(`(?m)^(?:kubectl [^\n]*-- |bin/)(nats [^#\n]*?)\s*(?:#[^\n]*)?$`)
	// kubectlExec matches the target of a `kubectl exec`.
	kubectlExec = regexp.MustCompile(`kubectl (?:-n \S+ )?exec (?:-it )?(\S+) --`)
)

// placeholders stand for the values a runbook leaves to the reader.
var placeholders = strings.NewReplacer("<event>", "message-status")

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

// runbookText returns the prod alerts' descriptions and the runbook pages,
// by where they come from.
func runbookText(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	pr := one[*PrometheusRule](t, mustRender(t, "prod"), "zen-twilio")
	for _, g := range pr.Spec.Groups {
		for _, rule := range g.Rules {
			out["alert "+rule.Alert] = rule.Annotations["description"]
		}
	}
	for _, f := range runbookDocs {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[f] = string(b)
	}
	return out
}

// runbookCommands returns the nats CLI commands of the runbook text, each
// with where it was found.
func runbookCommands(t *testing.T, text map[string]string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for where, s := range text {
		for _, m := range inlineCommand.FindAllStringSubmatch(prose(s), -1) {
			out[placeholders.Replace(m[1])] = where
		}
		for _, m := range blockCommand.FindAllStringSubmatch(s, -1) {
			out[placeholders.Replace(m[1])] = where
		}
	}
	return out
}

// prose is s without its code blocks (blockCommand reads those), on one
// line: an inline command may be wrapped, and a fence's backticks must not
// pair with a quote's.
func prose(s string) string {
	var lines []string
	inBlock := false
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "```") {
			inBlock = !inBlock
			continue
		}
		if !inBlock {
			lines = append(lines, l)
		}
	}
	return strings.Join(strings.Fields(strings.Join(lines, "\n")), " ")
}

// natsBoxHome runs the start-up script of the rendered nats-box against the
// server at url, with the nats CLI under test on its PATH and the
// zen-nats-users keys as test passwords, and returns the HOME it saved its
// contexts in. It also checks the script ends cleanly on SIGTERM.
func natsBoxHome(t *testing.T, cli, url string) string {
	t.Helper()
	r := mustRender(t, "tools")
	d := one[*deploymentT](t, r, "nats-box")
	c := container(t, &d.Spec.Template.Spec, "nats-box")
	bin := t.TempDir()
	if err := os.Symlink(cli, filepath.Join(bin, "nats")); err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	env := []string{"PATH=" + bin + ":/usr/bin:/bin"}
	for name, v := range r.env(t, c) {
		switch {
		case name == "HOME" || name == "XDG_CONFIG_HOME":
			// The pod's paths, moved under the test's HOME.
			rel, err := filepath.Rel(homeIn(t, r, c), v.Value)
			if err != nil || strings.HasPrefix(rel, "..") {
				t.Fatalf("nats-box %s=%s is not under its HOME", name, v.Value)
			}
			env = append(env, name+"="+filepath.Join(home, rel))
		case name == "NATS_URL":
			env = append(env, "NATS_URL="+url)
		case v.Source == "secret" && v.Secret.Name == "zen-nats-users":
			env = append(env, name+"="+testPassword(v.Secret.Key))
		case v.Source == "literal":
			env = append(env, name+"="+v.Value)
		}
	}
	cmd := exec.Command(c.Command[0], append(c.Command[1:], c.Args...)...)
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	contexts := filepath.Join(home, ".config", "nats", "context")
	if _, ok := r.env(t, c)["XDG_CONFIG_HOME"]; !ok {
		t.Errorf("nats-box sets no XDG_CONFIG_HOME: the CLI would keep its contexts under the passwd home, not HOME")
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, errA := os.Stat(filepath.Join(contexts, "admin.json"))
		_, errS := os.Stat(filepath.Join(contexts, "system.json"))
		if errA == nil && errS == nil {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("nats-box script exited before saving its contexts: %v\n%s", err, out.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("nats-box saved no admin and system contexts under %s in 20 s:\n%s", contexts, out.String())
		}
	}
	// Kubernetes stops the pod with SIGTERM: the shell must exit 0 at once.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("nats-box script on SIGTERM: %v\n%s", err, out.String())
		}
	case <-time.After(5 * time.Second):
		t.Errorf("nats-box script still running 5 s after SIGTERM")
	}
	return home
}

// homeIn is the HOME of the nats-box container c.
func homeIn(t *testing.T, r *Rendered, c corev1.Container) string {
	t.Helper()
	h, ok := r.env(t, c)["HOME"]
	if !ok || !filepath.IsAbs(h.Value) {
		t.Fatalf("nats-box HOME %q: want an absolute path", h.Value)
	}
	return h.Value
}

// TestRunbookCommandsRun: every nats CLI command an alert or a runbook page
// tells the on-call engineer to run works as written, in the environment
// of the nats-box deploy/k8s/tools ships (its start-up script run for real:
// the `admin` context selected, `--context system` for `nats server …`),
// against a real nats-server with the shipped auth.conf (the system
// account included) and the prod streams, consumers and bucket. Every
// `kubectl exec` names the nats-box as deploy/k8s/tools ships it.
func TestRunbookCommandsRun(t *testing.T) {
	cli := natsCLI(t)
	url := startNATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
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
	// One message in each stream a runbook's `nats sub --count 1` reads.
	admin, _ := connectAs(t, url, "admin")
	for _, subj := range []string{streams.RawSubject("message-status"), streams.EventSubject("message.status"),
		"zen.dlq.transformer.missing_required", "zen.attempts.communications-warehouse"} {
		m := nats.NewMsg(subj)
		m.Data = []byte("{}")
		m.Header.Set(zen.HeaderMsgID, subj)
		if err := admin.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
	}
	if err := admin.Flush(); err != nil {
		t.Fatal(err)
	}

	text := runbookText(t)
	target := toolsExecTarget(t)
	for where, s := range text {
		for _, m := range kubectlExec.FindAllStringSubmatch(strings.Join(strings.Fields(s), " "), -1) {
			if m[1] != target {
				t.Errorf("%s: `kubectl exec` names %q; deploy/k8s/tools ships %q", where, m[1], target)
			}
		}
	}

	cmds := runbookCommands(t, text)
	for _, must := range []string{"nats --context system server report jetstream", "nats stream ls", "nats account info"} {
		if _, ok := cmds[must]; !ok {
			t.Errorf("no runbook line says `%s`", must)
		}
	}
	home := natsBoxHome(t, cli, url)
	var ran []string
	for cmd, where := range cmds {
		args := append(strings.Fields(strings.ReplaceAll(strings.TrimPrefix(cmd, "nats "), "'", "")), "--timeout", "10s")
		c := exec.CommandContext(ctx, cli, args...)
		c.Env = []string{"HOME=" + home, "XDG_CONFIG_HOME=" + filepath.Join(home, ".config"), "NATS_URL=" + url}
		c.Stdin = strings.NewReader("")
		out, err := c.CombinedOutput()
		if err != nil {
			t.Errorf("%s: `%s` fails: %v\n%s", where, cmd, err, out)
		}
		ran = append(ran, cmd)
	}
	// The server-wide reports need the system account: as admin (the
	// selected context) they get no answer, so `--context system` matters.
	c := exec.CommandContext(ctx, cli, "server", "report", "jetstream", "--timeout", "3s")
	c.Env = []string{"HOME=" + home, "XDG_CONFIG_HOME=" + filepath.Join(home, ".config"), "NATS_URL=" + url}
	if out, err := c.CombinedOutput(); err == nil {
		t.Errorf("`nats server report jetstream` as admin succeeded; the runbooks' --context system would be needless:\n%s", out)
	}
	sort.Strings(ran)
	t.Logf("ran %d runbook commands:\n%s", len(ran), strings.Join(ran, "\n"))
	if len(ran) < 15 {
		t.Errorf("found only %d nats commands in the runbooks and alerts", len(ran))
	}
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zen-twilio/zen/pkg/natstest"
	"github.com/zen-twilio/zen/pkg/streams"
	"github.com/zen-twilio/zen/pkg/transform"
)

// buildOnce builds the zen binary and bin/nats for the subprocess tests.
var (
	buildOnce          sync.Once
	zenBin, natsBin    string
	buildErr           error
	testBinDir, _      = os.MkdirTemp("", "zen-cli-test-")
	readmeNATSCommands = regexp.MustCompile("(?m)^(bin/nats [^\n#]+?)\\s*(#.*)?$")
)

func binaries(t *testing.T) (string, string) {
	t.Helper()
	root := testRoot(t)
	buildOnce.Do(func() {
		zenBin = filepath.Join(testBinDir, "zen")
		build := exec.Command("go", "build", "-o", zenBin, "./cmd/zen")
		build.Dir = root
		out, err := build.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build ./cmd/zen: %v\n%s", err, out)
			return
		}
		// bin/nats is what the README tells operators to run; build it the
		// way `make tools` does when it is missing.
		natsBin = filepath.Join(root, "bin", "nats")
		if _, err := os.Stat(natsBin); err != nil {
			cmd := exec.Command("go", "build", "-o", natsBin, "github.com/nats-io/natscli/nats")
			cmd.Dir = filepath.Join(root, "tools")
			cmd.Env = append(os.Environ(), "GOWORK=off")
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("build bin/nats (make tools): %v\n%s", err, out)
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return zenBin, natsBin
}

func testRoot(tb testing.TB) string {
	tb.Helper()
	root := repoRoot()
	if root == "." {
		tb.Fatal("no go.work above the working directory")
	}
	return root
}

// devProc is a running `zen dev`.
type devProc struct {
	cmd      *exec.Cmd
	webhooks string // …/webhooks/twilio
	natsURL  string
	token    string
	stdout   *syncBuf
	done     chan error
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// cleanEnv is the environment without the variables zen dev honours, so
// the test sees the defaults a new user sees.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "TWILIO_AUTH_TOKEN", "PUBLIC_URL", "COMMS_WAREHOUSE_URL", "COMMS_WAREHOUSE_TOKEN", "PACKAGE_DIR", "NATS_URL":
			continue
		}
		out = append(out, kv)
	}
	return out
}

func startDev(t *testing.T, bin, dir string) *devProc {
	t.Helper()
	cmd := exec.Command(bin, "dev", "--dir", dir, "--http", "127.0.0.1:0", "--nats-port", "-1", "--sink", "127.0.0.1:0",
		"--transformer-ops", "127.0.0.1:0", "--forwarder-ops", "127.0.0.1:0")
	cmd.Dir = testRoot(t)
	cmd.Env = cleanEnv()
	return startDevProc(t, cmd)
}

// startDevProc starts cmd, a zen dev (or what runs one), and waits for the
// banner.
func startDevProc(t *testing.T, cmd *exec.Cmd) *devProc {
	t.Helper()
	pr, pw := io.Pipe()
	p := &devProc{cmd: cmd, stdout: &syncBuf{}, done: make(chan error, 1)}
	cmd.Stdout = io.MultiWriter(p.stdout, pw)
	stderr := &syncBuf{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- cmd.Wait(); pw.Close() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
		if t.Failed() {
			t.Logf("zen dev stdout:\n%s\nstderr:\n%s", p.stdout, stderr)
		}
	})
	found := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			switch {
			case len(f) >= 2 && f[0] == "webhooks":
				p.webhooks = f[1]
			case len(f) >= 2 && f[0] == "nats":
				p.natsURL = f[1]
			case len(f) >= 3 && f[0] == "auth" && f[1] == "token":
				p.token = f[2]
			case strings.HasPrefix(sc.Text(), "Ctrl-C"):
				close(found)
				_, _ = io.Copy(io.Discard, pr)
				return
			}
		}
	}()
	select {
	case <-found:
	case err := <-p.done:
		t.Fatalf("zen dev exited before its banner: %v\nstderr:\n%s", err, stderr)
	case <-time.After(60 * time.Second):
		t.Fatalf("no banner after 60s; stdout:\n%s\nstderr:\n%s", p.stdout, stderr)
	}
	return p
}

// interrupt sends Ctrl-C and waits for a clean exit.
func (p *devProc) interrupt(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("zen dev exited with %v after Ctrl-C", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("zen dev still running 30s after Ctrl-C")
	}
	if !strings.Contains(p.stdout.String(), "zen dev: stopped") {
		t.Errorf("no 'stopped' line after Ctrl-C:\n%s", p.stdout)
	}
}

func runCLI(t *testing.T, bin string, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = testRoot(t)
	cmd.Env = append(cleanEnv(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, out)
	}
	return string(out)
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

// TestDevSendInspectReplayRestart is the new user's path: zen dev, zen send
// the card's SMS, see the golden's event in warehouse.jsonl, look at the
// pipeline with every nats command of the README, replay, Ctrl-C, start
// again on the same data.
func TestDevSendInspectReplayRestart(t *testing.T) {
	zen, natsCLI := binaries(t)
	root := testRoot(t)
	dir := t.TempDir()
	p := startDev(t, zen, dir)
	if p.webhooks == "" || p.natsURL == "" || p.token != devAuthToken {
		t.Fatalf("banner lacks webhooks/nats/auth token lines:\n%s", p.stdout)
	}
	if !strings.Contains(p.stdout.String(), "zen send") || !strings.Contains(p.stdout.String(), filepath.Join(dir, "warehouse.jsonl")) {
		t.Errorf("banner lacks the zen send line or the sink file:\n%s", p.stdout)
	}

	out := runCLI(t, zen, nil, "send", "--url", p.webhooks, "fixtures/twilio/incoming_sms.json")
	if !strings.Contains(out, "incoming_sms") || !strings.Contains(out, " 200 ") || !strings.Contains(out, "<Response/>") {
		t.Errorf("zen send printed %q, want the 200 and the TwiML", out)
	}
	sinkFile := filepath.Join(dir, "warehouse.jsonl")
	var lines []string
	natstest.CheckFor(t, 10*time.Second, func() error {
		if lines = readLines(t, sinkFile); len(lines) < 1 {
			return fmt.Errorf("warehouse.jsonl has %d lines", len(lines))
		}
		return nil
	})
	checkAgainstGolden(t, []byte(lines[0]), filepath.Join(root, "goldens", "twilio", "incoming_sms.golden.json"))

	// A forged request is refused and lands nowhere.
	out = runCLIFail(t, zen, "send", "--url", p.webhooks, "--auth-token", "forged-token", "fixtures/twilio/message_status_delivered.json")
	if !strings.Contains(out, " 403 ") {
		t.Errorf("forged send printed %q, want 403", out)
	}
	// A poison request (signed, but missing a required parameter) becomes a
	// dead letter with its reason. It names its event by the signed path,
	// as Twilio's callback URLs do: the ingester ignores X-Twilio-Event.
	poison := filepath.Join(t.TempDir(), "poison.json")
	writeFile(t, poison, `{"headers":{},"body":{"MessageStatus":"delivered","AccountSid":"AC00000000000000000000000000000001"}}`)
	runCLI(t, zen, nil, "send", "--url", p.webhooks+"/message-status", poison)
	env := []string{"NATS_URL=" + p.natsURL}
	natstest.CheckFor(t, 10*time.Second, func() error {
		out := runCLI(t, zen, env, "replay", "dlq", "--list")
		if !strings.Contains(out, "missing_required") {
			return fmt.Errorf("no missing_required dead letter listed yet:\n%s", out)
		}
		return nil
	})

	// Every nats CLI command the README gives runs against the pipeline.
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	section := readmeSection(t, string(readme), "Inspect the pipeline with the nats CLI")
	cmds := readmeNATSCommands.FindAllStringSubmatch(section, -1)
	if len(cmds) < 8 {
		t.Fatalf("README section has %d bin/nats commands, want the full set", len(cmds))
	}
	outputs := map[string]string{}
	for _, c := range cmds {
		line := strings.ReplaceAll(c[1], "bin/nats", natsCLI)
		cmd := exec.Command("sh", "-c", line)
		cmd.Dir = root
		cmd.Env = append(cleanEnv(), env...)
		cmd.Stdin = strings.NewReader("")
		done := make(chan struct{})
		var b []byte
		go func() { b, err = cmd.CombinedOutput(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			t.Fatalf("README command %q hangs", c[1])
		}
		if err != nil {
			t.Errorf("README command %q failed: %v\n%s", c[1], err, b)
		}
		outputs[c[1]] = string(b)
	}
	for want, in := range map[string]string{
		"TWILIO_RAW":                                 "bin/nats stream ls",
		"ZEN_ATTEMPTS":                               "bin/nats stream ls",
		"zen.dlq.transformer.missing_required":       "bin/nats stream subjects ZEN_DLQ",
		"forwarder-communications-warehouse":         "bin/nats consumer report ZEN_EVENTS",
		"communications-warehouse.tw-SMabc123def456": "bin/nats kv ls zen_dedupe",
	} {
		if !strings.Contains(outputs[in], want) {
			t.Errorf("%q output lacks %q:\n%s", in, want, outputs[in])
		}
	}
	for _, want := range []string{"ZEN_DLQ", "ZEN_EVENTS"} {
		if !strings.Contains(outputs["bin/nats stream ls"], want) {
			t.Errorf("bin/nats stream ls lacks %s", want)
		}
	}

	// Replaying the raw requests after a "rule change" is safe: the event is
	// already delivered, the warehouse sees nothing new.
	out = runCLI(t, zen, env, "replay", "raw", "--since", "1h", "--event", "incoming-message")
	if !strings.Contains(out, "replayed 1 messages") {
		t.Errorf("replay raw printed %q", out)
	}
	waitDrained(t, p.natsURL)
	if got := readLines(t, sinkFile); len(got) != 1 {
		t.Errorf("warehouse.jsonl has %d lines after replaying a delivered request, want 1", len(got))
	}

	// The load generator: unique Sids, so each of the 5×8 requests is new.
	// The eight fixtures of the six card families, one event each (the
	// directory holds more since issue 25, some yielding several events).
	card := []string{"call_completed", "incoming_call", "incoming_mms", "incoming_sms", "message_status_delivered",
		"message_status_failed", "recording_completed", "verification_approved"}
	args := []string{"send", "--url", p.webhooks, "--count", "5", "--concurrency", "4"}
	for _, name := range card {
		args = append(args, "fixtures/twilio/"+name+".json")
	}
	out = runCLI(t, zen, nil, args...)
	if !strings.HasPrefix(out, "sent 40: 200 ×40 in ") || strings.Contains(out, "\r") {
		t.Errorf("zen send --count printed %q", out)
	}
	natstest.CheckFor(t, 20*time.Second, func() error {
		if got := readLines(t, sinkFile); len(got) != 41 {
			return fmt.Errorf("warehouse.jsonl has %d lines, want 41", len(got))
		}
		return nil
	})

	// Ctrl-C, then a second run resumes with the stored streams.
	p.interrupt(t)
	p2 := startDev(t, zen, dir)
	nc, err := nats.Connect(p2.natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	s, err := js.Stream(context.Background(), streams.StreamRaw)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs < 3 {
		t.Errorf("TWILIO_RAW has %d messages after a restart, want the stored ones (>= 3)", info.State.Msgs)
	}
	runCLI(t, zen, nil, "send", "--url", p2.webhooks, "fixtures/twilio/message_status_delivered.json")
	natstest.CheckFor(t, 10*time.Second, func() error {
		if got := readLines(t, sinkFile); len(got) != 42 {
			return fmt.Errorf("warehouse.jsonl has %d lines, want 42", len(got))
		}
		return nil
	})
	p2.interrupt(t)
}

func runCLIFail(t *testing.T, bin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = testRoot(t)
	cmd.Env = cleanEnv()
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("%s %s succeeded, want a failure:\n%s", filepath.Base(bin), strings.Join(args, " "), out)
	}
	return string(out)
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readmeSection(t *testing.T, doc, heading string) string {
	t.Helper()
	i := strings.Index(doc, "## "+heading)
	if i < 0 {
		t.Fatalf("README has no section %q", heading)
	}
	rest := doc[i+3:]
	if j := strings.Index(rest, "\n## "); j >= 0 {
		rest = rest[:j]
	}
	return rest
}

// checkAgainstGolden compares an event with real timestamps to a golden
// written with the card's fixed clock.
func checkAgainstGolden(t *testing.T, got []byte, goldenPath string) {
	t.Helper()
	var ev map[string]any
	if err := json.Unmarshal(got, &ev); err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(goldenPath)
	if err != nil {
		t.Fatal(err)
	}
	var golden map[string]any
	if err := json.Unmarshal(want, &golden); err != nil {
		t.Fatal(err)
	}
	payload, _ := ev["payload"].(map[string]any)
	for _, ts := range []struct {
		obj   map[string]any
		field string
	}{{ev, "timestamp"}, {payload, "processed_at"}} {
		s, _ := ts.obj[ts.field].(string)
		at, err := time.Parse(time.RFC3339Nano, s)
		if err != nil || time.Since(at) > 5*time.Minute || time.Since(at) < -time.Minute {
			t.Errorf("%s = %q, want a real, recent RFC 3339 time", ts.field, s)
		}
	}
	// Put the golden's fixed times in and compare the rest field by field.
	g := golden["payload"].(map[string]any)
	ev["timestamp"], payload["processed_at"] = golden["timestamp"], g["processed_at"]
	norm, _ := json.Marshal(ev)
	cg, err := transform.Canonical(norm)
	if err != nil {
		t.Fatal(err)
	}
	cw, err := transform.Canonical(want)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(cg, cw) {
		t.Errorf("warehouse event differs from the golden\n%s", transform.Diff(cw, cg))
	}
}

func waitDrained(t *testing.T, url string) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	natstest.CheckFor(t, 15*time.Second, func() error {
		for _, c := range []struct{ stream, name string }{
			{streams.StreamRaw, streams.ConsumerTransformer},
			{streams.StreamEvents, streams.ForwarderConsumer("communications-warehouse")},
		} {
			// Every event type of the package is routed to the warehouse, so
			// its consumer sees every ZEN_EVENTS message.
			if err := natstest.Drained(ctx, js, c.stream, c.name); err != nil {
				return err
			}
		}
		return nil
	})
}

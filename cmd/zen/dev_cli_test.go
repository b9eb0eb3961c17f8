package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/zen-twilio/zen/pkg/natstest"
)

// holdPort listens on a free loopback port for the test and returns it.
func holdPort(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// With its ports taken, zen dev says "address in use" with each address
// and its flag at once, and exits 1 (it used to wait 10 s for NATS and say
// "not ready").
func TestDevSaysAddressInUse(t *testing.T) {
	natsLn, httpLn, opsLn := holdPort(t), holdPort(t), holdPort(t)
	natsPort := natsLn.Addr().(*net.TCPAddr).Port
	start := time.Now()
	code, stdout, stderr := runZen(t, "dev", "--dir", t.TempDir(), "--nats-port", fmt.Sprint(natsPort),
		"--http", httpLn.Addr().String(), "--sink", "127.0.0.1:0", "--transformer-ops", opsLn.Addr().String(), "--forwarder-ops", "127.0.0.1:0")
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("took %s to fail, want at once", took)
	}
	if code != 1 || stdout != "" {
		t.Errorf("exit %d, stdout %q; want 1 and nothing", code, stdout)
	}
	for _, want := range []string{
		fmt.Sprintf("zen dev: address in use: 127.0.0.1:%d (--nats-port; a nats-server or another zen dev running? --nats-port -1 picks a free port)\n", natsPort),
		"address in use: " + httpLn.Addr().String() + " (--http; ",
		"address in use: " + opsLn.Addr().String() + " (--transformer-ops; ",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if strings.Contains(stderr, "not ready") {
		t.Errorf("stderr still says not ready:\n%s", stderr)
	}
}

// The sink logs one summary line per interval, not a line per event.
func TestSinkLogsASummaryPerInterval(t *testing.T) {
	t.Parallel()
	core, logs := observer.New(zap.InfoLevel)
	s, err := newSink(filepath.Join(t.TempDir(), "warehouse.jsonl"), "sink-token", zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	srv := httptest.NewServer(s)
	defer srv.Close()
	post := func(token string, n int) {
		for range n {
			req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(`{"id": 1}`))
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		}
	}
	run := func(every time.Duration) (stop func()) {
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { s.report(ctx, every); close(done) }()
		return func() { cancel(); <-done }
	}
	// No tick during the requests: one line at the end says it all.
	stop := run(time.Hour)
	post("sink-token", 1234)
	post("wrong", 2)
	stop()
	if got, want := messages(logs), []string{"warehouse: 1,234 events (+1,234); refused 2 with a wrong bearer token (+2)"}; !slices.Equal(got, want) {
		t.Errorf("logged %q, want %q", got, want)
	}
	// A tick logs what arrived since the last line, and only then.
	stop = run(20 * time.Millisecond)
	defer stop()
	post("sink-token", 3)
	natstest.CheckFor(t, 5*time.Second, func() error {
		if got := messages(logs); len(got) != 2 || got[1] != "warehouse: 1,237 events (+3)" {
			return fmt.Errorf("logged %q, want the 3 new events in one line", got)
		}
		return nil
	})
	time.Sleep(100 * time.Millisecond) // five idle ticks
	if n := logs.Len(); n != 2 {
		t.Errorf("%d lines after idle ticks, want 2: %q", n, messages(logs))
	}
}

func messages(logs *observer.ObservedLogs) []string {
	var out []string
	for _, e := range logs.All() {
		out = append(out, e.Message)
	}
	return out
}

func TestThousands(t *testing.T) {
	t.Parallel()
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 18409: "18,409", 1234567: "1,234,567", -1234: "-1,234"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
}

// `make run`, then SIGINT to the make process alone (not its process
// group, as Ctrl-C would): zen dev stops cleanly, make exits, the ports are
// free again.
func TestMakeRunStopsOnSIGINTToMake(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Fatalf("make is needed for this test: %v", err)
	}
	_, natsBin := binaries(t)
	bin := t.TempDir()
	// bin/nats is a prerequisite of make run; a fresh copy keeps make from
	// rebuilding it.
	b, err := os.ReadFile(natsBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "nats"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	httpAddr := holdPort(t)
	addr := httpAddr.Addr().String()
	httpAddr.Close()
	cmd := exec.Command("make", "--no-print-directory", "run", "BIN="+bin, "ZEN_DEV_FLAGS=--dir "+t.TempDir()+
		" --http "+addr+" --nats-port -1 --sink 127.0.0.1:0 --transformer-ops 127.0.0.1:0 --forwarder-ops 127.0.0.1:0")
	cmd.Dir = testRoot(t)
	cmd.Env = cleanEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // a group of its own: the signal goes to make only
	p := startDevProc(t, cmd)
	// Whatever happens, nothing of the group outlives the test.
	t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	natsAddr := strings.TrimPrefix(p.natsURL, "nats://")

	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("make run still running 30s after SIGINT to make:\n%s", p.stdout)
	}
	if !strings.Contains(p.stdout.String(), "zen dev: stopped") {
		t.Errorf("zen dev did not stop cleanly:\n%s", p.stdout)
	}
	for _, a := range []string{addr, natsAddr} {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			t.Errorf("%s still taken after make exited: %v", a, err)
			continue
		}
		ln.Close()
	}
}

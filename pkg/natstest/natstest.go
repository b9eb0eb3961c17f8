// Package natstest gives tests a real NATS server with JetStream.
//
// By default the server is embedded (nats-server/v2 in-process, file store in
// a temp dir, random port). ZEN_TEST_NATS selects another kind:
//
//	ZEN_TEST_NATS=embedded   (default) in-process server
//	ZEN_TEST_NATS=process    a nats-server binary (NATS_SERVER_BIN, else bin/nats-server, else PATH)
//	ZEN_TEST_NATS=docker     a container via testcontainers-go; skipped, with the reason, where
//	                         no Docker engine answers
//
// Every kind is a real server: nothing here imitates NATS.
package natstest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zen-twilio/zen/pkg/natsembed"
	"github.com/zen-twilio/zen/pkg/streams"
)

// Server is a running NATS server with JetStream for one test.
type Server struct {
	// URL is the client URL, e.g. nats://127.0.0.1:41234.
	URL string

	kind     string
	port     int
	storeDir string

	mu   sync.Mutex
	ns   *server.Server // embedded
	cmd  *exec.Cmd      // process
	stop func()         // docker
}

// Kind returns the kind of server selected by ZEN_TEST_NATS.
func Kind() string {
	k := os.Getenv("ZEN_TEST_NATS")
	if k == "" {
		return "embedded"
	}
	return k
}

// Run starts a server for tb and stops it (removing its store) at cleanup.
func Run(tb testing.TB) *Server {
	tb.Helper()
	s := &Server{kind: Kind(), storeDir: tb.TempDir()}
	switch s.kind {
	case "embedded":
		s.startEmbedded(tb, -1)
	case "process":
		s.startProcess(tb, freePort(tb))
	case "docker":
		s.startDocker(tb)
	default:
		tb.Fatalf("ZEN_TEST_NATS=%q: want embedded, process or docker", s.kind)
	}
	tb.Cleanup(s.Shutdown)
	return s
}

// RunProcess starts a nats-server process whatever ZEN_TEST_NATS says, for
// tests that freeze the server with Pause.
func RunProcess(tb testing.TB) *Server {
	tb.Helper()
	s := &Server{kind: "process", storeDir: tb.TempDir()}
	s.startProcess(tb, freePort(tb))
	tb.Cleanup(s.Shutdown)
	return s
}

// Pause freezes a process server (SIGSTOP): connections stay open but it
// answers nothing, like a server stalled on a slow disk.
func (s *Server) Pause(tb testing.TB) {
	tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		tb.Fatal("Pause needs a running process server (RunProcess)")
	}
	_ = s.cmd.Process.Signal(syscall.SIGSTOP)
}

// Pid returns a process server's pid, or 0 (embedded, docker, stopped).
func (s *Server) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Resume continues a paused server (SIGCONT).
func (s *Server) Resume() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		_ = s.cmd.Process.Signal(syscall.SIGCONT)
	}
}

func (s *Server) startEmbedded(tb testing.TB, port int) {
	tb.Helper()
	ns, err := natsembed.Start(natsembed.Options{Port: port, StoreDir: s.storeDir, ServerName: "zen-test"})
	if err != nil {
		tb.Fatalf("start embedded nats: %v", err)
	}
	s.mu.Lock()
	s.ns = ns
	s.port = ns.Addr().(*net.TCPAddr).Port
	s.URL = ns.ClientURL()
	s.mu.Unlock()
}

// ServerBinary finds a nats-server binary: $NATS_SERVER_BIN, the repo's
// bin/nats-server (built by `make tools`), or PATH.
func ServerBinary() (string, error) {
	if p := os.Getenv("NATS_SERVER_BIN"); p != "" {
		return p, nil
	}
	if dir, err := os.Getwd(); err == nil {
		for d := dir; ; d = filepath.Dir(d) {
			if _, err := os.Stat(filepath.Join(d, "go.work")); err == nil {
				p := filepath.Join(d, "bin", "nats-server")
				if _, err := os.Stat(p); err == nil {
					return p, nil
				}
				break
			}
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	return exec.LookPath("nats-server")
}

func (s *Server) startProcess(tb testing.TB, port int) {
	tb.Helper()
	bin, err := ServerBinary()
	if err != nil {
		tb.Fatalf("ZEN_TEST_NATS=process: no nats-server binary (run `make tools` or set NATS_SERVER_BIN): %v", err)
	}
	cmd := exec.Command(bin, "-js", "-a", "127.0.0.1", "-p", strconv.Itoa(port), "-sd", s.storeDir, "-n", "zen-test")
	cmd.Stdout, cmd.Stderr = nil, nil
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start %s: %v", bin, err)
	}
	s.mu.Lock()
	s.cmd, s.port = cmd, port
	s.URL = fmt.Sprintf("nats://127.0.0.1:%d", port)
	s.mu.Unlock()
	waitJetStream(tb, s.URL)
}

// Shutdown stops the server; the store stays for Restart. Safe to call twice.
func (s *Server) Shutdown() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ns != nil {
		s.ns.Shutdown()
		s.ns.WaitForShutdown()
		s.ns = nil
	}
	if s.cmd != nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
		s.cmd = nil
	}
	if s.stop != nil {
		s.stop()
		s.stop = nil
	}
}

// Restart starts the server again on the same port with the same store, so
// connected clients reconnect and streams survive.
func (s *Server) Restart(tb testing.TB) {
	tb.Helper()
	s.Shutdown()
	switch s.kind {
	case "embedded":
		s.startEmbedded(tb, s.port)
	case "process":
		s.startProcess(tb, s.port)
	default:
		tb.Fatalf("Restart is not supported for ZEN_TEST_NATS=%s", s.kind)
	}
}

// Conn connects to the server; the connection is closed at cleanup. It
// reconnects forever, as the services do.
func (s *Server) Conn(tb testing.TB, opts ...nats.Option) *nats.Conn {
	tb.Helper()
	opts = append([]nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(50 * time.Millisecond)}, opts...)
	nc, err := nats.Connect(s.URL, opts...)
	if err != nil {
		tb.Fatalf("connect %s: %v", s.URL, err)
	}
	tb.Cleanup(nc.Close)
	return nc
}

// JetStream returns a JetStream context on a new connection.
func (s *Server) JetStream(tb testing.TB) jetstream.JetStream {
	tb.Helper()
	js, err := jetstream.New(s.Conn(tb))
	if err != nil {
		tb.Fatalf("jetstream: %v", err)
	}
	return js
}

// ApplyStreams creates the pipeline's streams and bucket with cfg.
func ApplyStreams(tb testing.TB, js jetstream.JetStream, cfg streams.Config) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := streams.Apply(ctx, js, cfg); err != nil {
		tb.Fatalf("apply streams: %v", err)
	}
}

// CheckFor polls f every 20 ms until it returns nil or the timeout passes,
// then fails tb with f's last error.
func CheckFor(tb testing.TB, timeout time.Duration, f func() error) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for {
		if err = f(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("condition not met after %s: %v", timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func waitJetStream(tb testing.TB, url string) {
	tb.Helper()
	CheckFor(tb, 15*time.Second, func() error {
		nc, err := nats.Connect(url)
		if err != nil {
			return err
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err = js.AccountInfo(ctx)
		return err
	})
}

func freePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Drained reports (nil) when consumer has acked or terminated every message
// of stream, for a consumer that sees every message of it. The ack floor is
// the test: a consumer's pending counts can lag a message just stored, and a
// message waiting for a delayed redelivery counts in neither.
func Drained(ctx context.Context, js jetstream.JetStream, stream, consumer string) error {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return err
	}
	sinfo, err := s.Info(ctx)
	if err != nil {
		return err
	}
	c, err := js.Consumer(ctx, stream, consumer)
	if err != nil {
		return err
	}
	info, err := c.Info(ctx)
	if err != nil {
		return err
	}
	if info.NumPending != 0 || info.NumAckPending != 0 || info.AckFloor.Stream < sinfo.State.LastSeq {
		return fmt.Errorf("%s: pending %d, ack pending %d, ack floor %d of %d", consumer, info.NumPending, info.NumAckPending, info.AckFloor.Stream, sinfo.State.LastSeq)
	}
	return nil
}

// ProcessCPU is the CPU time this process has used, user and system: with
// an embedded server, client and server together. Benchmarks report its
// growth per operation (cpu-ns/op), which holds on a shared machine where
// wall time per operation does not.
func ProcessCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

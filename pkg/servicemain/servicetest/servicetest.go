// Package servicetest runs a service binary the way an operator does, for
// the tests of services/*/cmd: it builds the real binary, starts it with an
// explicit environment, and checks its exit code and output, including the
// command-line conventions every service shares ([CheckCommandLine]).
package servicetest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Main builds the main package in the test's working directory as name
// into a temporary directory, sets *bin to its path, runs the tests and
// exits: call it from TestMain, so that one build serves every test.
func Main(m *testing.M, name string, bin *string) {
	dir, err := os.MkdirTemp("", name+"-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	*bin = filepath.Join(dir, name)
	if out, err := exec.Command("go", "build", "-o", *bin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build %s: %v\n%s", name, err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// Proc is a started service binary.
type Proc struct {
	cmd    *exec.Cmd
	stdout syncBuffer
	stderr syncBuffer
	done   chan struct{}
	code   int
}

// Start runs bin with args and exactly the environment env (nothing is
// inherited), and kills it at cleanup if it is still running.
func Start(tb testing.TB, bin string, env map[string]string, args ...string) *Proc {
	tb.Helper()
	p := &Proc{cmd: exec.Command(bin, args...), done: make(chan struct{})}
	for k, v := range env {
		p.cmd.Env = append(p.cmd.Env, k+"="+v)
	}
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		tb.Fatalf("start %s: %v", bin, err)
	}
	go func() {
		err := p.cmd.Wait()
		var ee *exec.ExitError
		switch {
		case err == nil:
		case errors.As(err, &ee):
			p.code = ee.ExitCode()
		default:
			p.code = -1
		}
		close(p.done)
	}()
	tb.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

// Run runs bin to its end and returns its exit code, stdout and stderr.
func Run(tb testing.TB, bin string, env map[string]string, args ...string) (code int, stdout, stderr string) {
	tb.Helper()
	p := Start(tb, bin, env, args...)
	code = p.Wait(tb, 30*time.Second)
	return code, p.Stdout(), p.Stderr()
}

// Stdout and Stderr return what the process wrote so far.
func (p *Proc) Stdout() string { return p.stdout.String() }

// Stderr returns what the process wrote to stderr so far.
func (p *Proc) Stderr() string { return p.stderr.String() }

// Signal sends sig to the process.
func (p *Proc) Signal(tb testing.TB, sig syscall.Signal) {
	tb.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		tb.Fatalf("signal %v: %v", sig, err)
	}
}

// Wait waits up to timeout for the process to exit and returns its exit
// code; past the timeout the test fails.
func (p *Proc) Wait(tb testing.TB, timeout time.Duration) int {
	tb.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(timeout):
		tb.Fatalf("still running after %s; stderr:\n%s", timeout, p.Stderr())
		return 0
	}
}

// WaitFor polls until the process's stderr contains s, failing the test
// after timeout or if the process exits first.
func (p *Proc) WaitFor(tb testing.TB, s string, timeout time.Duration) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(p.Stderr(), s) {
		select {
		case <-p.done:
			tb.Fatalf("exited (%d) before logging %q; stderr:\n%s", p.code, s, p.Stderr())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			tb.Fatalf("no %q in stderr after %s:\n%s", s, timeout, p.Stderr())
		}
	}
}

// FreeAddr returns a loopback address nothing listens on (at the moment).
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Status returns the HTTP status of a GET of url, or an error.
func Status(url string) (int, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// CheckCommandLine checks the conventions every service binary keeps:
// --help and -h print the usage with every variable in vars on stdout and
// exit 0, --version prints "<name> <version>" and exits 0, an unknown flag
// or an argument prints the usage on stderr and exits 2. None of them
// starts the service (no variable is set, so it could not). Every
// description in help names a variable in vars.
func CheckCommandLine(t *testing.T, bin, name string, vars []string, help map[string]string) {
	t.Helper()
	for v := range help {
		if !slices.Contains(vars, v) {
			t.Errorf("help describes %s, which the %s does not read", v, name)
		}
	}
	for _, arg := range []string{"--help", "-h"} {
		code, stdout, stderr := Run(t, bin, nil, arg)
		if code != 0 || stderr != "" {
			t.Errorf("%s %s: exit %d, stderr %q; want 0 and nothing", name, arg, code, stderr)
		}
		if !strings.HasPrefix(stdout, "usage: "+name) {
			t.Errorf("%s %s: stdout does not start with the usage:\n%s", name, arg, stdout)
		}
		for _, v := range vars {
			if !strings.Contains(stdout, "\n  "+v+" ") {
				t.Errorf("%s %s does not list %s with a description:\n%s", name, arg, v, stdout)
			}
		}
	}
	code, stdout, stderr := Run(t, bin, nil, "--version")
	if code != 0 || stderr != "" || !strings.HasPrefix(stdout, name+" ") || strings.Count(stdout, "\n") != 1 {
		t.Errorf("%s --version: exit %d, stdout %q, stderr %q; want 0 and one line", name, code, stdout, stderr)
	}
	for _, args := range [][]string{{"--bogus"}, {"serve"}} {
		code, stdout, stderr := Run(t, bin, nil, args...)
		if code != 2 || stdout != "" || !strings.Contains(stderr, "usage: "+name) {
			t.Errorf("%s %s: exit %d, stdout %q, stderr %q; want 2 and the usage on stderr", name, args[0], code, stdout, stderr)
		}
	}
}

// CheckSIGTERMWithoutNATS starts bin with env, LISTEN_ADDR and a NATS_URL
// nothing listens on: the log says so with the URL, /readyz is 503, and
// SIGTERM stops it cleanly (exit 0, no stack trace).
func CheckSIGTERMWithoutNATS(t *testing.T, bin string, env map[string]string) {
	t.Helper()
	natsAddr, addr := FreeAddr(t), FreeAddr(t)
	all := map[string]string{"LISTEN_ADDR": addr, "NATS_URL": "nats://" + natsAddr}
	for k, v := range env {
		all[k] = v
	}
	p := Start(t, bin, all)
	p.WaitFor(t, "cannot reach NATS at nats://"+natsAddr+": connection refused; retrying in ", 10*time.Second)
	if code, err := Status("http://" + addr + "/readyz"); err != nil || code != 503 {
		t.Errorf("/readyz without NATS = %d, %v; want 503", code, err)
	}
	p.Signal(t, syscall.SIGTERM)
	if code := p.Wait(t, 30*time.Second); code != 0 {
		t.Errorf("exit %d after SIGTERM, want 0; stderr:\n%s", code, p.Stderr())
	}
	CheckNoCrash(t, p.Stderr())
}

// CheckPlainErrors fails unless stderr is made of lines "<name>: …" only:
// no zap JSON, no stack trace, no literal \n, and contains every want.
func CheckPlainErrors(t *testing.T, name, stderr string, want ...string) {
	t.Helper()
	for line := range strings.SplitSeq(strings.TrimSuffix(stderr, "\n"), "\n") {
		if !strings.HasPrefix(line, name+": ") || strings.Contains(line, `\n`) || strings.HasPrefix(line, "{") {
			t.Errorf("stderr line %q is not a plain %q line", line, name+": …")
		}
	}
	for _, w := range want {
		if !strings.Contains(stderr, w) {
			t.Errorf("stderr does not contain %q:\n%s", w, stderr)
		}
	}
}

// CheckNoCrash fails when a log shows a crash: a stack trace, a panic, a
// zap fatal record.
func CheckNoCrash(t *testing.T, stderr string) {
	t.Helper()
	for _, bad := range []string{"goroutine ", "stacktrace", `"level":"fatal"`, "panic"} {
		if strings.Contains(stderr, bad) {
			t.Errorf("stderr contains %q:\n%s", bad, stderr)
		}
	}
}

// RepoPath returns path relative to the repository root (the directory of
// go.work above the working directory).
func RepoPath(tb testing.TB, path string) string {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.work")); err == nil {
			return filepath.Join(d, path)
		}
		if filepath.Dir(d) == d {
			tb.Fatalf("no go.work above %s", dir)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for the process's writes and the
// test's reads at once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

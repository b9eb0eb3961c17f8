package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	corev1 "k8s.io/api/core/v1"
)

// natsServerBinary finds the nats-server the live tests run: $ZEN_NATS_SERVER
// or ../bin/nats-server (built by `make tools`).
func natsServerBinary(tb testing.TB) string {
	tb.Helper()
	if p := os.Getenv("ZEN_NATS_SERVER"); p != "" {
		if _, err := os.Stat(p); err != nil {
			tb.Fatalf("ZEN_NATS_SERVER=%s: %v", p, err)
		}
		return p
	}
	p, err := filepath.Abs("../bin/nats-server")
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		tb.Fatalf("no nats-server binary at %s and ZEN_NATS_SERVER is not set: run `make tools` at the repository root, "+
			"or build one with `cd tools && GOWORK=off go build -o /tmp/nats-server github.com/nats-io/nats-server/v2` "+
			"and set ZEN_NATS_SERVER=/tmp/nats-server", p)
	}
	return p
}

// natsUsers are the users of auth.conf (system: the system account's).
var natsUsers = []string{"admin", "provisioner", "ingester", "transformer", "forwarder", "system"}

// testPassword is the password a live test gives user.
func testPassword(user string) string { return "test-" + user + "-password" }

// shippedAuthConf returns the auth.conf the prod overlay mounts into the
// NATS pods, as rendered, and the password variable of each user, read from
// the nats container's secret references.
func shippedAuthConf(t *testing.T) (conf string, passwordVars map[string]string) {
	t.Helper()
	r := mustRender(t, "prod")
	file, c, _ := natsConfig(t, r)
	b, err := os.ReadFile(filepath.Join(filepath.Dir(file), "auth.conf"))
	if err != nil {
		t.Fatalf("prod NATS config has no auth.conf: %v", err)
	}
	passwordVars = map[string]string{}
	for name, v := range r.env(t, c) {
		if v.Source == "secret" && v.Secret.Name == "zen-nats-users" {
			passwordVars[v.Secret.Key] = name
		}
	}
	for _, u := range natsUsers {
		if passwordVars[u] == "" {
			t.Fatalf("the nats container sets no variable from zen-nats-users key %s", u)
		}
	}
	return string(b), passwordVars
}

// startNATS runs a real nats-server process with JetStream whose users are
// the shipped auth.conf (passwords: testPassword), and returns its URL. The
// server is stopped when the test ends.
func startNATS(t *testing.T) string {
	t.Helper()
	bin := natsServerBinary(t)
	auth, vars := shippedAuthConf(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "auth.conf"), []byte(auth), 0o600); err != nil {
		t.Fatal(err)
	}
	// max_file_store as the prod nats.conf: the server refuses a stream
	// whose max_bytes it cannot reserve, and the prod streams reserve
	// 270.5 GiB (bytes are only reserved, not written).
	conf := fmt.Sprintf("listen: 127.0.0.1:-1\nports_file_dir: %q\njetstream {\n  store_dir: %q\n  max_file_store: 330G\n}\ninclude ./auth.conf\n",
		dir, filepath.Join(dir, "jetstream"))
	confPath := filepath.Join(dir, "server.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", confPath)
	cmd.Env = os.Environ()
	for user, v := range vars {
		cmd.Env = append(cmd.Env, v+"="+testPassword(user))
	}
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("nats-server output:\n%s", out.String())
		}
	})

	// The server writes its listening ports to ports_file_dir once ready.
	deadline := time.Now().Add(15 * time.Second)
	for {
		files, _ := filepath.Glob(filepath.Join(dir, "*.ports"))
		if len(files) == 1 {
			var ports struct {
				Nats []string `json:"nats"`
			}
			b, err := os.ReadFile(files[0])
			if err == nil && json.Unmarshal(b, &ports) == nil && len(ports.Nats) > 0 {
				return ports.Nats[0]
			}
		}
		select {
		case err := <-done:
			t.Fatalf("nats-server exited (%v):\n%s", err, out.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("nats-server did not report its ports within 15s:\n%s", out.String())
		}
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// errLog collects a connection's asynchronous errors (permission
// violations arrive that way).
type errLog struct {
	mu   sync.Mutex
	errs []string
}

func (l *errLog) handler(_ *nats.Conn, _ *nats.Subscription, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errs = append(l.errs, err.Error())
}

// waitFor polls until an error containing want (case-insensitive) arrived.
func (l *errLog) waitFor(want string, within time.Duration) error {
	want = strings.ToLower(want)
	deadline := time.Now().Add(within)
	for {
		l.mu.Lock()
		for _, e := range l.errs {
			if strings.Contains(strings.ToLower(e), want) {
				l.mu.Unlock()
				return nil
			}
		}
		seen := append([]string(nil), l.errs...)
		l.mu.Unlock()
		if time.Now().After(deadline) {
			return fmt.Errorf("no error %q within %s (got %q)", want, within, seen)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// connectAs connects as user with its test password and the inbox prefix
// the prod overlay gives it (inboxPrefixes; admin keeps _INBOX).
func connectAs(t *testing.T, url, user string) (*nats.Conn, *errLog) {
	t.Helper()
	return connectInbox(t, url, user, inboxPrefixes(t)[user])
}

// connectInbox connects as user with inbox prefix inbox ("" is _INBOX).
func connectInbox(t *testing.T, url, user, inbox string) (*nats.Conn, *errLog) {
	t.Helper()
	log := &errLog{}
	opts := []nats.Option{nats.Name("deploy-test-" + user), nats.UserInfo(user, testPassword(user)),
		nats.ErrorHandler(log.handler), nats.Timeout(5 * time.Second)}
	if inbox != "" {
		opts = append(opts, nats.CustomInboxPrefix(inbox))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	t.Cleanup(nc.Close)
	return nc, log
}

// secretFor returns the test value of a secret reference: NATS passwords
// are the live server's; anything else a fake.
func secretFor(ref *corev1.SecretKeySelector) string {
	if ref.Name == "zen-nats-users" {
		return testPassword(ref.Key)
	}
	return fakeSecret(ref)
}

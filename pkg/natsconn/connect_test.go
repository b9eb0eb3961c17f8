package natsconn

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/zen-twilio/zen/pkg/envconf"
)

func TestRetryWaitDoublesToItsCap(t *testing.T) {
	t.Parallel()
	want := []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second}
	for i, w := range want {
		if got := RetryWait(i + 1); got != w {
			t.Errorf("RetryWait(%d) = %s, want %s", i+1, got, w)
		}
		if j := jittered(i + 1); j < w || j > w+w/5 {
			t.Errorf("jittered(%d) = %s, want within [%s, %s]", i+1, j, w, w+w/5)
		}
	}
	if got := RetryWait(1000); got != MaxRetryWait {
		t.Errorf("RetryWait(1000) = %s, want the cap", got)
	}
}

func TestRedactURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"nats://127.0.0.1:4222":                          "nats://127.0.0.1:4222",
		"nats://user:secret@nats:4222":                   "nats://user:xxxxx@nats:4222",
		"nats://s3cr3t-token@nats:4222":                  "nats://xxxxx@nats:4222",
		"nats://a:pw@n1:4222, nats://n2:4222":            "nats://a:xxxxx@n1:4222,nats://n2:4222",
		"nats://us%zz:pw@nats:4222":                      "[unparsable URL with credentials]",
		"tls://ingester:nats-pw@nats.zen.svc:4222/extra": "tls://ingester:xxxxx@nats.zen.svc:4222/extra",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNATSURLIsValidated(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"nats://nats:4222", true},
		{"nats://n1:4222,nats://n2:4222, nats://n3:4222", true},
		{"tls://nats:4222", true},
		{"wss://nats.example.com", true},
		{"nats:4222", false},
		{"127.0.0.1:4222", false},
		{"http://nats:4222", false},
		{"nats://", false},
		{"nats://n1:4222,n2:4222", false},
		{"nats://u:secret@:4222", false},
	} {
		r := envconf.New(envconf.MapLookup(map[string]string{"NATS_URL": tc.url}))
		SettingsFromEnv(r, DefaultSettings("ingester"))
		err := r.Err()
		if (err == nil) != tc.ok {
			t.Errorf("NATS_URL=%q: error %v, want ok %v", tc.url, err, tc.ok)
		}
		if err != nil && (!strings.Contains(err.Error(), "env var `NATS_URL`") || strings.Contains(err.Error(), "secret")) {
			t.Errorf("NATS_URL=%q: error %q must name the variable and hide the password", tc.url, err)
		}
	}
}

// Dial names the URL (redacted) and says why, in a few words.
func TestDialSaysWhichURLIsUnreachable(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	_, err = Dial("nats://provisioner:pw@"+addr, nats.Timeout(time.Second))
	if want := "cannot reach NATS at nats://provisioner:xxxxx@" + addr + ": connection refused"; err == nil || err.Error() != want {
		t.Errorf("Dial error = %v, want %q", err, want)
	}
}

func TestReason(t *testing.T) {
	t.Parallel()
	refused := fmt.Errorf("dial: %w", &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)})
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, "connection closed"},
		{nats.ErrNoServers, "connection refused"},
		{nats.ErrAuthorization, "authorization violation"},
		{refused, "connection refused"},
		{errors.New("nats: timeout"), "timeout"},
	} {
		if got := Reason(tc.err); got != tc.want {
			t.Errorf("Reason(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

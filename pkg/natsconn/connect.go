package natsconn

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/zen-twilio/zen/pkg/envconf"
)

// The reconnect backoff: the first retry after FirstRetryWait, doubling up
// to MaxRetryWait, each wait with up to a fifth more of random jitter so
// that replicas do not all knock at once.
const (
	FirstRetryWait = 250 * time.Millisecond
	MaxRetryWait   = 5 * time.Second
)

// retryReportEvery bounds how often an unreachable server is reported once
// the backoff reached its cap: every attempt until then, then once in this.
const retryReportEvery = 30 * time.Second

// RetryWait is the wait before retry attempt n (1, 2, …) without jitter.
func RetryWait(attempt int) time.Duration {
	d := FirstRetryWait
	for i := 1; i < attempt && d < MaxRetryWait; i++ {
		d *= 2
	}
	return min(d, MaxRetryWait)
}

// jittered is the [nats.ReconnectDelayHandler]: RetryWait plus jitter.
func jittered(attempt int) time.Duration {
	d := RetryWait(attempt)
	return d + rand.N(d/5)
}

// Watch returns the options that report the connection to urls on log in
// plain words: each failed attempt to reach the server, with the URL
// (credentials redacted), the reason and the next wait — "cannot reach NATS
// at nats://nats:4222: connection refused; retrying in 2s" — once the wait
// reached its cap at most every 30 s; a lost connection; and every
// (re)connection. A nil log returns no option.
func Watch(urls string, log *zap.Logger) []nats.Option {
	if log == nil {
		return nil
	}
	shown := RedactURL(urls)
	var mu sync.Mutex
	attempts, last := 0, time.Time{}
	connected := func(nc *nats.Conn) {
		mu.Lock()
		attempts = 0
		mu.Unlock()
		log.Info("connected to NATS at "+nc.ConnectedUrlRedacted(), zap.String("nats_url", nc.ConnectedUrlRedacted()))
	}
	return []nats.Option{
		nats.ConnectHandler(connected),
		nats.ReconnectHandler(connected),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if nc.IsClosed() || nc.IsDraining() {
				return
			}
			log.Warn(fmt.Sprintf("lost the connection to NATS at %s: %s; reconnecting", shown, Reason(err)), zap.String("nats_url", shown))
		}),
		nats.ReconnectErrHandler(func(_ *nats.Conn, err error) {
			mu.Lock()
			attempts++
			n, wait := attempts, RetryWait(attempts)
			report := wait < MaxRetryWait || time.Since(last) >= retryReportEvery
			if report {
				last = time.Now()
			}
			mu.Unlock()
			if report {
				log.Warn(fmt.Sprintf("cannot reach NATS at %s: %s; retrying in %s", shown, Reason(err), wait),
					zap.String("nats_url", shown), zap.Int("attempt", n))
			}
		}),
	}
}

// Dial connects once to urls (for the zen CLI: no retry) and names the URL
// when it fails: "cannot reach NATS at nats://127.0.0.1:4222: connection
// refused".
func Dial(urls string, opts ...nats.Option) (*nats.Conn, error) {
	nc, err := nats.Connect(urls, opts...)
	if err != nil {
		return nil, fmt.Errorf("cannot reach NATS at %s: %s", RedactURL(urls), Reason(err))
	}
	return nc, nil
}

// Reason says why a connection attempt failed in a few words: the system
// error ("connection refused") rather than the dial chain, and nats.go's
// "no servers available for connection", which it returns when every server
// refused the connection, as "connection refused".
func Reason(err error) string {
	var errno syscall.Errno
	switch {
	case err == nil:
		return "connection closed"
	case errors.Is(err, nats.ErrNoServers):
		return "connection refused"
	case errors.As(err, &errno):
		return errno.Error()
	}
	return strings.TrimPrefix(err.Error(), "nats: ")
}

// RedactURL returns the comma-separated NATS URLs with their credentials
// hidden, as nats.go's ConnectedUrlRedacted does: a password, or a token
// given as the user, becomes "xxxxx".
func RedactURL(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		p = strings.TrimSpace(p)
		u, err := url.Parse(p)
		switch {
		case err != nil && strings.Contains(p, "@"):
			p = "[unparsable URL with credentials]"
		case err != nil || u.User == nil:
		default:
			if _, ok := u.User.Password(); ok {
				u.User = url.UserPassword(u.User.Username(), "xxxxx")
			} else {
				u.User = url.User("xxxxx")
			}
			p = u.String()
		}
		parts[i] = p
	}
	return strings.Join(parts, ",")
}

// natsSchemes are the URL schemes nats.go connects with.
var natsSchemes = map[string]bool{"nats": true, "tls": true, "ws": true, "wss": true}

// urlsFromEnv reads NATS_URL (def when unset) and records on r each URL of
// the list that is not a nats://, tls://, ws:// or wss:// URL with a host.
func urlsFromEnv(r *envconf.Reader, def string) string {
	v := r.String("NATS_URL", def)
	for p := range strings.SplitSeq(v, ",") {
		u, err := url.Parse(strings.TrimSpace(p))
		if err != nil || !natsSchemes[u.Scheme] || u.Hostname() == "" {
			r.Fail("NATS_URL", "must be nats://host:port URLs, comma-separated (or tls://, ws://, wss://), got %q", RedactURL(p))
			break
		}
	}
	return v
}

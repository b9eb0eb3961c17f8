// Package natsconn is how every service connects to NATS and lets go of it:
// one set of connection options (reconnect forever, optional credentials,
// the service's own inbox prefix) and one graceful drain.
package natsconn

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/zen-twilio/zen/pkg/envconf"
)

// Settings are how a service reaches NATS: NATS_URL, NATS_CREDS or
// NATS_USER/NATS_PASSWORD when set, and NATS_INBOX_PREFIX.
type Settings struct {
	URL      string
	Creds    string
	User     string
	Password envconf.Secret
	// InboxPrefix replaces nats.go's "_INBOX" in every reply subject of
	// the connection ([nats.CustomInboxPrefix]): request replies (JetStream
	// API calls, publish acknowledgements, [Requests]) and the deliveries
	// of pull consumers, which nats.go sends to [nats.Conn.NewInbox]
	// subjects. Empty keeps "_INBOX".
	InboxPrefix string
}

// InboxPrefix is the inbox prefix of NATS user user, "_INBOX_<user>": the
// default of each service (ingester, transformer, forwarder) and of `zen
// streams apply` (provisioner). Why (issue 24): replies and pull
// deliveries carry raw requests and events, and a user allowed `_INBOX.>`
// reads everyone's; deploy/k8s/base/nats/auth.conf lets each user
// subscribe to its own prefix only.
func InboxPrefix(user string) string { return "_INBOX_" + user }

// DefaultSettings are service's defaults: [nats.DefaultURL], no
// credentials, and the inbox prefix [InboxPrefix](service).
func DefaultSettings(service string) Settings {
	return Settings{URL: nats.DefaultURL, InboxPrefix: InboxPrefix(service)}
}

// SettingsFromEnv reads the five variables over def; a NATS_INBOX_PREFIX
// that is not a subject prefix is recorded on r.
func SettingsFromEnv(r *envconf.Reader, def Settings) Settings {
	return Settings{
		URL:         urlsFromEnv(r, def.URL),
		Creds:       r.String("NATS_CREDS", def.Creds),
		User:        r.String("NATS_USER", def.User),
		Password:    r.Secret("NATS_PASSWORD"),
		InboxPrefix: InboxPrefixFromEnv(r, def.InboxPrefix),
	}
}

// InboxPrefixFromEnv reads NATS_INBOX_PREFIX (def when unset; "" keeps
// nats.go's "_INBOX"). A value nats-server could not use as the start of a
// subject (an empty token, a wildcard, a space) is recorded on r.
func InboxPrefixFromEnv(r *envconf.Reader, def string) string {
	p := r.String("NATS_INBOX_PREFIX", def)
	if p != "" && !validPrefix(p) {
		r.Fail("NATS_INBOX_PREFIX", "must be subject tokens without wildcards or spaces, e.g. %s, got %q", InboxPrefix("ingester"), p)
	}
	return p
}

// validPrefix reports whether p is one or more literal subject tokens.
func validPrefix(p string) bool {
	for tok := range strings.SplitSeq(p, ".") {
		if tok == "" || strings.ContainsAny(tok, "*> \t\r\n") {
			return false
		}
	}
	return true
}

// Connect connects service name to s.URL without waiting for a server:
// when NATS cannot be reached the connection keeps retrying in the
// background ([RetryWait]), and log says so plainly, naming the URL
// ([Watch]). Callers see the state through [nats.Conn.IsConnected] (their
// /readyz). A nil log reports nothing.
func (s Settings) Connect(name string, log *zap.Logger) (*nats.Conn, error) {
	nc, err := nats.Connect(s.URL, append(s.options(name), Watch(s.URL, log)...)...)
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", RedactURL(s.URL), err)
	}
	return nc, nil
}

// options are the connection options of service name: reconnect forever
// with a capped backoff, retry the first connect, the credentials when set
// and the inbox prefix.
func (s Settings) options(name string) []nats.Option {
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.CustomReconnectDelay(jittered),
		nats.RetryOnFailedConnect(true),
	}
	if s.Creds != "" {
		opts = append(opts, nats.UserCredentials(s.Creds))
	}
	if s.User != "" {
		opts = append(opts, nats.UserInfo(s.User, s.Password.Reveal()))
	}
	if s.InboxPrefix != "" {
		opts = append(opts, nats.CustomInboxPrefix(s.InboxPrefix))
	}
	return opts
}

// Drain drains nc (in-flight publishes and acks are flushed) and waits up
// to timeout for it to close; past that it closes nc and says so.
// A connection that is not connected (NATS down at SIGTERM) has nothing it
// could flush: it is closed at once, and that is a clean stop.
func Drain(nc *nats.Conn, timeout time.Duration) error {
	if !nc.IsConnected() {
		nc.Close()
		return nil
	}
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	if err := nc.Drain(); err != nil {
		nc.Close()
		return fmt.Errorf("drain nats: %w", err)
	}
	select {
	case <-closed:
		return nil
	case <-time.After(timeout):
		nc.Close()
		return errors.New("drain nats: timed out")
	}
}

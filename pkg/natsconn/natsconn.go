// Package natsconn is how every service connects to NATS and lets go of it:
// one set of connection options (reconnect forever, optional credentials)
// and one graceful drain.
package natsconn

import (
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/zen-twilio/zen/pkg/envconf"
)

// Settings are how a service reaches NATS: NATS_URL, and NATS_CREDS or
// NATS_USER/NATS_PASSWORD when set.
type Settings struct {
	URL      string
	Creds    string
	User     string
	Password envconf.Secret
}

// SettingsFromEnv reads the four variables; url is NATS_URL's default.
func SettingsFromEnv(r *envconf.Reader, url string) Settings {
	return Settings{
		URL:      r.String("NATS_URL", url),
		Creds:    r.String("NATS_CREDS", ""),
		User:     r.String("NATS_USER", ""),
		Password: r.Secret("NATS_PASSWORD"),
	}
}

// Connect connects service name to s.URL with options.
func (s Settings) Connect(name string) (*nats.Conn, error) {
	nc, err := nats.Connect(s.URL, options(name, s.Creds, s.User, s.Password)...)
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", s.URL, err)
	}
	return nc, nil
}

// options are the connection options of service name: reconnect forever,
// retry the first connect, and the credentials when set.
func options(name, creds, user string, password envconf.Secret) []nats.Option {
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.RetryOnFailedConnect(true),
	}
	if creds != "" {
		opts = append(opts, nats.UserCredentials(creds))
	}
	if user != "" {
		opts = append(opts, nats.UserInfo(user, password.Reveal()))
	}
	return opts
}

// Drain drains nc (in-flight publishes and acks are flushed) and waits up
// to timeout for it to close; past that it closes nc and says so.
func Drain(nc *nats.Conn, timeout time.Duration) error {
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

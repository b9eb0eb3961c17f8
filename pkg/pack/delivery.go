package pack

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/zen-twilio/zen/pkg/envconf"
)

// Delivery is a target's delivery policy (`targets[].delivery`). A zero
// field means the forwarder's environment default (FORWARDER_*), so a
// package without `delivery` behaves as before.
type Delivery struct {
	// Timeout bounds one POST (default FORWARDER_HTTP_TIMEOUT).
	Timeout time.Duration
	// Concurrency bounds deliveries at once per replica (default
	// FORWARDER_CONCURRENCY).
	Concurrency int
	Retry       RetryPolicy
	// RateLimit, when PerSecond > 0, bounds requests per second per replica.
	RateLimit RateLimit
	// Breaker, when Enabled, stops POSTs to a failing target for a while.
	Breaker Breaker
}

// RetryPolicy is when and how often a failed delivery is tried again.
type RetryPolicy struct {
	// Strategy is "exponential" (delay doubles) or "linear" (delay grows by
	// Initial); "" is the default (exponential).
	Strategy string
	// Initial is the first delay; Max caps every delay (0: the defaults).
	Initial, Max time.Duration
	// Attempts bounds deliveries before the event is dead-lettered (the
	// consumer's MaxDeliver; 0: FORWARDER_MAX_DELIVER).
	Attempts int
	// Statuses are the HTTP statuses retried (nil: 408, 429 and 5xx).
	// Network errors and timeouts are always retried.
	Statuses []StatusRange
}

// StatusRange is an inclusive range of HTTP statuses ("503" is 503–503,
// "5xx" is 500–599).
type StatusRange struct{ Lo, Hi int }

// DefaultRetryStatuses are retried when a target names none.
var DefaultRetryStatuses = []StatusRange{{408, 408}, {429, 429}, {500, 599}}

// Retries reports whether status is retried.
func (p RetryPolicy) Retries(status int) bool {
	rs := p.Statuses
	if rs == nil {
		rs = DefaultRetryStatuses
	}
	for _, r := range rs {
		if status >= r.Lo && status <= r.Hi {
			return true
		}
	}
	return false
}

// RateLimit bounds requests to a target, per forwarder replica: with N
// replicas the target sees at most N × PerSecond.
type RateLimit struct {
	PerSecond float64
	Burst     int
}

// Breaker is a target's circuit breaker. It opens after
// ConsecutiveFailures failures in a row, or when at least MinRequests
// attempts in Window failed at FailureRate or more; it stays open for
// OpenFor, then lets one probe through (half-open), which closes it on
// success and opens it again on failure.
type Breaker struct {
	Enabled             bool
	ConsecutiveFailures int
	FailureRate         float64
	Window              time.Duration
	MinRequests         int
	OpenFor             time.Duration
}

// TLS is a target's mutual TLS: the client certificate presented and the
// CA the target's certificate must chain to (empty: the system roots).
type TLS struct {
	CertFile, KeyFile, CAFile string
	// Config is built from the files at load time.
	Config *tls.Config
}

// TargetAuthTypes are the auth types the forwarder can send.
var TargetAuthTypes = []string{"none", "bearer", "api_key", "basic", "oauth2"}

// targetAuth reads `targets[].auth`: every type the forwarder sends, with
// its secrets from {{VARS}} or *_file keys (read here, relative to the
// package directory).
func (l *loader) targetAuth(r *nodeReader, n *yaml.Node, path string) Auth {
	m := r.mapping(n, path, []string{"type", "token", "token_file", "key", "value", "value_file",
		"username", "password", "password_file", "token_url", "client_id", "client_secret", "client_secret_file", "scopes"}, []string{"type"})
	a := Auth{Type: r.str(m["type"], path+".type"), Key: r.str(m["key"], path+".key"),
		Username: r.str(m["username"], path+".username"), TokenURL: r.str(m["token_url"], path+".token_url"),
		ClientID: r.str(m["client_id"], path+".client_id"), Scopes: r.strs(m["scopes"], path+".scopes")}
	secret := func(key string) envconf.Secret {
		v := envconf.Secret(r.str(m[key], path+"."+key))
		if fn := m[key+"_file"]; fn != nil {
			if m[key] != nil {
				r.c.errorf(r.file, fn.Line, path+"."+key+"_file", "give %s or %s_file, not both", key, key)
			}
			v = envconf.Secret(l.readSecretFile(r, fn, path+"."+key+"_file"))
		}
		return v
	}
	need := func(keys ...string) {
		for _, k := range keys {
			if m[k] == nil && m[k+"_file"] == nil && n != nil {
				r.c.errorf(r.file, n.Line, path+"."+k, "is required for %s auth", a.Type)
			}
		}
	}
	allowed := map[string][]string{"none": nil, "bearer": {"token", "token_file"}, "api_key": {"key", "value", "value_file"},
		"basic": {"username", "password", "password_file"}, "oauth2": {"token_url", "client_id", "client_secret", "client_secret_file", "scopes"}}
	keys, known := allowed[a.Type]
	if !known {
		if m["type"] != nil {
			r.c.errorf(r.file, m["type"].Line, path+".type", "unknown auth type %q (the forwarder sends %s)", a.Type, strings.Join(TargetAuthTypes, ", "))
		}
		return a
	}
	for k, v := range m {
		if k != "type" && !setOf(keys)[k] {
			r.c.errorf(r.file, v.Line, path+"."+k, "does not apply to %s auth (it takes %v)", a.Type, keys)
		}
	}
	switch a.Type {
	case "bearer":
		need("token")
		a.Token = secret("token")
	case "api_key":
		need("key", "value")
		a.Token = secret("value")
	case "basic":
		need("username", "password")
		a.Token = secret("password")
	case "oauth2":
		need("token_url", "client_id", "client_secret")
		a.Token = secret("client_secret")
		if m["token_url"] != nil && !strings.HasPrefix(a.TokenURL, "https://") && !strings.HasPrefix(a.TokenURL, "http://") {
			r.c.errorf(r.file, m["token_url"].Line, path+".token_url", "want an http(s) URL, got %q", a.TokenURL)
		}
	}
	return a
}

// readSecretFile reads a secret from a file named in the package (relative
// to the package directory), trimming one trailing newline.
func (l *loader) readSecretFile(r *nodeReader, n *yaml.Node, path string) string {
	name := l.path(r.str(n, path))
	b, err := os.ReadFile(name)
	if err != nil {
		r.c.errorf(r.file, n.Line, path, "%v", err)
		return ""
	}
	return strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
}

// path resolves a file named in the package against its directory.
func (l *loader) path(name string) string {
	if name == "" || filepath.IsAbs(name) {
		return name
	}
	return filepath.Join(l.dir, name)
}

// targetTLS reads `targets[].tls` and loads the certificate, key and CA.
func (l *loader) targetTLS(r *nodeReader, n *yaml.Node, path string) *TLS {
	if n == nil {
		return nil
	}
	m := r.mapping(n, path, []string{"cert_file", "key_file", "ca_file"}, nil)
	t := &TLS{CertFile: l.path(r.str(m["cert_file"], path+".cert_file")), KeyFile: l.path(r.str(m["key_file"], path+".key_file")),
		CAFile: l.path(r.str(m["ca_file"], path+".ca_file"))}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	switch {
	case (m["cert_file"] == nil) != (m["key_file"] == nil):
		r.c.errorf(r.file, n.Line, path, "cert_file and key_file go together")
	case m["cert_file"] != nil:
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			r.c.errorf(r.file, m["cert_file"].Line, path+".cert_file", "load client certificate: %v", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	if m["ca_file"] != nil {
		pem, err := os.ReadFile(t.CAFile)
		pool := x509.NewCertPool()
		if err == nil && !pool.AppendCertsFromPEM(pem) {
			err = fmt.Errorf("%s: no PEM certificate", t.CAFile)
		}
		if err != nil {
			r.c.errorf(r.file, m["ca_file"].Line, path+".ca_file", "%v", err)
		}
		cfg.RootCAs = pool
	}
	t.Config = cfg
	return t
}

// delivery reads `targets[].delivery`.
func (l *loader) delivery(r *nodeReader, n *yaml.Node, path string) Delivery {
	m := r.mapping(n, path, []string{"timeout", "concurrency", "retry", "rate_limit", "circuit_breaker"}, nil)
	d := Delivery{Timeout: r.duration(m["timeout"], path+".timeout"), Concurrency: r.positive(m["concurrency"], path+".concurrency")}
	if rn := m["retry"]; rn != nil {
		d.Retry = l.retry(r, rn, path+".retry")
	}
	if rn := m["rate_limit"]; rn != nil {
		rm := r.mapping(rn, path+".rate_limit", []string{"per_second", "burst"}, []string{"per_second"})
		d.RateLimit = RateLimit{PerSecond: r.fraction(rm["per_second"], path+".rate_limit.per_second", 0, 1e6),
			Burst: r.positive(rm["burst"], path+".rate_limit.burst")}
		if d.RateLimit.Burst == 0 {
			d.RateLimit.Burst = 1
		}
	}
	if bn := m["circuit_breaker"]; bn != nil {
		d.Breaker = l.breaker(r, bn, path+".circuit_breaker")
	}
	return d
}

func (l *loader) retry(r *nodeReader, n *yaml.Node, path string) RetryPolicy {
	m := r.mapping(n, path, []string{"strategy", "initial", "max", "attempts", "statuses"}, nil)
	p := RetryPolicy{Strategy: r.str(m["strategy"], path+".strategy"), Initial: r.duration(m["initial"], path+".initial"),
		Max: r.duration(m["max"], path+".max"), Attempts: r.positive(m["attempts"], path+".attempts")}
	if s := m["strategy"]; s != nil && p.Strategy != "exponential" && p.Strategy != "linear" {
		r.c.errorf(r.file, s.Line, path+".strategy", "want exponential or linear, got %q", p.Strategy)
	}
	if p.Initial > 0 && p.Max > 0 && p.Max < p.Initial {
		r.c.errorf(r.file, m["max"].Line, path+".max", "must be >= initial (%s), got %s", p.Initial, p.Max)
	}
	if sn := m["statuses"]; sn != nil {
		p.Statuses = []StatusRange{}
		for i, s := range r.strs(sn, path+".statuses") {
			sr, err := parseStatusRange(s)
			if err != nil {
				r.c.errorf(r.file, sn.Content[i].Line, fmt.Sprintf("%s.statuses[%d]", path, i), "%v", err)
				continue
			}
			p.Statuses = append(p.Statuses, sr)
		}
	}
	return p
}

// parseStatusRange reads "503", "5xx" or "500-504".
func parseStatusRange(s string) (StatusRange, error) {
	bad := fmt.Errorf("want a status (503), a class (5xx) or a range (500-504) between 400 and 599, got %q", s)
	var r StatusRange
	switch lo, hi, isRange := strings.Cut(s, "-"); {
	case len(s) == 3 && strings.HasSuffix(s, "xx"):
		c, err := strconv.Atoi(s[:1])
		if err != nil {
			return r, bad
		}
		r = StatusRange{c * 100, c*100 + 99}
	case isRange:
		a, err1 := strconv.Atoi(lo)
		b, err2 := strconv.Atoi(hi)
		if err1 != nil || err2 != nil || b < a {
			return r, bad
		}
		r = StatusRange{a, b}
	default:
		c, err := strconv.Atoi(s)
		if err != nil {
			return r, bad
		}
		r = StatusRange{c, c}
	}
	// A 2xx is a delivery and a 3xx a wrong URL: neither can be retried.
	if r.Lo < 400 || r.Hi > 599 {
		return r, bad
	}
	return r, nil
}

func (l *loader) breaker(r *nodeReader, n *yaml.Node, path string) Breaker {
	m := r.mapping(n, path, []string{"consecutive_failures", "failure_rate", "window", "min_requests", "open_for"}, []string{"open_for"})
	b := Breaker{Enabled: true, ConsecutiveFailures: r.positive(m["consecutive_failures"], path+".consecutive_failures"),
		FailureRate: r.fraction(m["failure_rate"], path+".failure_rate", 0, 1), Window: r.duration(m["window"], path+".window"),
		MinRequests: r.positive(m["min_requests"], path+".min_requests"), OpenFor: r.duration(m["open_for"], path+".open_for")}
	if b.ConsecutiveFailures == 0 && b.FailureRate == 0 {
		r.c.errorf(r.file, n.Line, path, "give consecutive_failures, failure_rate (with window), or both")
	}
	if b.FailureRate > 0 && b.Window <= 0 {
		r.c.errorf(r.file, n.Line, path+".window", "is required with failure_rate")
	}
	if b.FailureRate > 0 && b.MinRequests == 0 {
		b.MinRequests = 10
	}
	return b
}

// duration reads a Go duration ("30s"); 0 when absent.
func (r *nodeReader) duration(n *yaml.Node, path string) time.Duration {
	if n == nil {
		return 0
	}
	s := r.str(n, path)
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		r.c.errorf(r.file, n.Line, path, "want a positive duration such as 30s, got %q", s)
		return 0
	}
	return d
}

// positive reads an integer > 0; 0 when absent.
func (r *nodeReader) positive(n *yaml.Node, path string) int {
	if n == nil {
		return 0
	}
	v := r.integer(n, path)
	if v < 1 {
		r.c.errorf(r.file, n.Line, path, "must be >= 1, got %d", v)
		return 0
	}
	return v
}

// fraction reads a number in (lo, hi]; 0 when absent.
func (r *nodeReader) fraction(n *yaml.Node, path string, lo, hi float64) float64 {
	if n == nil {
		return 0
	}
	s := r.str(n, path)
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v <= lo || v > hi {
		r.c.errorf(r.file, n.Line, path, "want a number above %g and at most %g, got %q", lo, hi, s)
		return 0
	}
	return v
}

// Package envconf reads service configuration from environment variables
// through an injectable lookup, collecting every problem instead of stopping
// at the first, and naming each variable the way an operator types it.
//
// Typical use:
//
//	r := envconf.New(os.LookupEnv)
//	cfg.Addr = r.String("LISTEN_ADDR", ":8080")
//	cfg.AckWait = r.Duration("ACK_WAIT", 30*time.Second)
//	if err := r.Err(); err != nil { … }
//
// A Reader is not safe for concurrent use.
package envconf

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Lookup is the signature of [os.LookupEnv]; tests pass a map's lookup.
type Lookup func(string) (string, bool)

// MapLookup returns a Lookup over m, for tests.
func MapLookup(m map[string]string) Lookup {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// OS is the process environment.
var OS Lookup = os.LookupEnv

// Secret is a string that never prints: String and GoString return
// "[redacted]", so a Secret logged by accident reveals nothing. Use Reveal
// where the value is really needed.
type Secret string

// String implements fmt.Stringer.
func (Secret) String() string { return "[redacted]" }

// GoString implements fmt.GoStringer.
func (Secret) GoString() string { return "[redacted]" }

// MarshalText keeps secrets out of JSON and zap's reflection encoder.
func (Secret) MarshalText() ([]byte, error) { return []byte("[redacted]"), nil }

// Reveal returns the secret value.
func (s Secret) Reveal() string { return string(s) }

// Reader reads typed values and records every variable it was asked for and
// every problem it found.
type Reader struct {
	lookup Lookup
	names  map[string]bool
	errs   []error
}

// New returns a Reader over lookup (nil means the process environment).
func New(lookup Lookup) *Reader {
	if lookup == nil {
		lookup = OS
	}
	return &Reader{lookup: lookup, names: map[string]bool{}}
}

// Names returns, sorted, every variable name the Reader was asked for: the
// service's configuration surface, checked against the Kubernetes manifests.
func (r *Reader) Names() []string {
	out := make([]string, 0, len(r.names))
	for n := range r.names {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Err returns every problem found so far, joined, or nil.
func (r *Reader) Err() error { return errors.Join(r.errs...) }

// Fail records a problem about a variable, for checks done by the caller.
func (r *Reader) Fail(name string, format string, args ...any) {
	r.errs = append(r.errs, fmt.Errorf("env var `%s` %s", name, fmt.Sprintf(format, args...)))
}

func (r *Reader) get(name string) (string, bool) {
	r.names[name] = true
	v, ok := r.lookup(name)
	v = strings.TrimSpace(v)
	return v, ok && v != ""
}

// String returns the variable's value, or def when unset or empty.
func (r *Reader) String(name, def string) string {
	if v, ok := r.get(name); ok {
		return v
	}
	return def
}

// Required returns the variable's value and records a problem when it is unset.
func (r *Reader) Required(name string) string {
	v, ok := r.get(name)
	if !ok {
		r.Fail(name, "is required")
	}
	return v
}

// Secret returns the variable as a [Secret], or "" when unset.
func (r *Reader) Secret(name string) Secret {
	v, _ := r.get(name)
	return Secret(v)
}

// List splits a comma-separated variable, dropping empty items.
func (r *Reader) List(name string, def []string) []string {
	v, ok := r.get(name)
	if !ok {
		return def
	}
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Int returns the variable as an int, or def.
func (r *Reader) Int(name string, def int) int {
	v, ok := r.get(name)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		r.Fail(name, "must be an integer, got %q", v)
		return def
	}
	return n
}

// Int64 returns the variable as an int64, or def.
func (r *Reader) Int64(name string, def int64) int64 {
	v, ok := r.get(name)
	if !ok {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		r.Fail(name, "must be an integer, got %q", v)
		return def
	}
	return n
}

// Bool returns the variable as a bool (strconv.ParseBool), or def.
func (r *Reader) Bool(name string, def bool) bool {
	v, ok := r.get(name)
	if !ok {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		r.Fail(name, "must be true or false, got %q", v)
		return def
	}
	return b
}

// Duration returns the variable as a time.Duration ("30s", "168h"), or def.
func (r *Reader) Duration(name string, def time.Duration) time.Duration {
	v, ok := r.get(name)
	if !ok {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		r.Fail(name, "must be a duration like 30s or 168h, got %q", v)
		return def
	}
	return d
}

// Durations returns a comma-separated list of durations, or def.
func (r *Reader) Durations(name string, def []time.Duration) []time.Duration {
	items := r.List(name, nil)
	if items == nil {
		return def
	}
	out := make([]time.Duration, 0, len(items))
	for _, s := range items {
		d, err := time.ParseDuration(s)
		if err != nil {
			r.Fail(name, "must be a comma-separated list of durations, got %q", s)
			return def
		}
		out = append(out, d)
	}
	return out
}

// Positive records a problem when v <= 0.
func (r *Reader) Positive(name string, v int64) {
	if v <= 0 {
		r.Fail(name, "must be > 0, got %d", v)
	}
}

package transform

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/zen-twilio/zen/pkg/envconf"
	"github.com/zen-twilio/zen/pkg/pack"
	"github.com/zen-twilio/zen/pkg/zen"
)

// RedactKeyVar is the environment variable that holds the key of the
// rules' hash redactions (read by the transformer's config).
const RedactKeyVar = "TRANSFORMER_REDACT_KEY"

// HashPrefix starts every hashed value: the algorithm, then 64 hex digits.
const HashPrefix = "hmac-sha256:"

// WithRedactKey sets the HMAC-SHA256 key of the rules' hash redactions. A
// package with a hash redaction and no key is refused by New.
func WithRedactKey(key envconf.Secret) Option {
	return func(e *Engine) { e.redactKey = []byte(key.Reveal()) }
}

// checkRedactKey refuses a package that hashes without a key: the value
// would otherwise leave in clear or unkeyed, and an unkeyed SHA-256 of an
// E.164 number is reversed by hashing every number (issue 24).
func checkRedactKey(p *pack.Package, key []byte) error {
	if len(key) > 0 || !p.UsesHash() {
		return nil
	}
	for _, r := range p.Rules {
		for _, d := range r.Redact {
			if d.Mode == pack.RedactHash {
				return fmt.Errorf("transform: %s:%d: rule %s hashes %s, but %s is not set (the HMAC key of hash redactions)", r.File, d.Line, r.TwilioEvent, d.Path, RedactKeyVar)
			}
		}
	}
	return nil
}

// redactor replaces one value by its redacted form.
type redactor func(string) string

// hasher returns the hash redactor: HMAC-SHA256 of the value under key,
// as HashPrefix and lowercase hex. The empty string stays empty.
func hasher(key []byte) redactor {
	return func(s string) string {
		if s == "" {
			return ""
		}
		m := hmac.New(sha256.New, key)
		m.Write([]byte(s))
		return HashPrefix + hex.EncodeToString(m.Sum(nil))
	}
}

// phoneLike is an optional channel prefix (whatsapp:), an optional +, and
// 7 to 15 digits (E.164 allows at most 15).
var phoneLike = regexp.MustCompile(`^([a-z]+:)?(\+?)([0-9]{7,15})$`)

// mask keeps a phone-like value's prefix, + and last 4 digits, each other
// digit becoming *; any other value becomes "[redacted N chars]" (N
// characters, not bytes). The empty string stays empty.
func mask(s string) string {
	if s == "" {
		return ""
	}
	if m := phoneLike.FindStringSubmatch(s); m != nil {
		d := m[3]
		return m[1] + m[2] + strings.Repeat("*", len(d)-4) + d[len(d)-4:]
	}
	return fmt.Sprintf("[redacted %d chars]", utf8.RuneCountInString(s))
}

// redactPayload applies the rule's redactions to payload in place. The
// values it replaces are rebuilt, never modified: a raw field may share its
// maps with the decoded request.
func (c *compiled) redactPayload(payload zen.Payload) {
	for _, d := range c.rule.Redact {
		f := redactor(mask)
		if d.Mode == pack.RedactHash {
			f = c.hash
		}
		i, keys := fieldAt(payload, d.Path)
		if i >= 0 {
			payload[i].Value = redactAt(payload[i].Value, keys, f)
		}
	}
}

// fieldAt returns the index of the payload field a redact path names (-1
// when the event lacks it) and the keys inside it.
func fieldAt(payload zen.Payload, path string) (int, []string) {
	head, rest, nested := strings.Cut(path, ".")
	for i, fl := range payload {
		if fl.Name == path {
			return i, nil
		}
	}
	for i, fl := range payload {
		if nested && fl.Name == head {
			return i, strings.Split(rest, ".")
		}
	}
	return -1, nil
}

// redactAt returns v with the value under keys redacted; v is unchanged
// when a key is absent.
func redactAt(v any, keys []string, f redactor) any {
	if len(keys) == 0 {
		return redactAll(v, f)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return v
	}
	next, ok := m[keys[0]]
	if !ok {
		return v
	}
	cp := make(map[string]any, len(m))
	for k, x := range m {
		cp[k] = x
	}
	cp[keys[0]] = redactAt(next, keys[1:], f)
	return cp
}

// redactAll redacts every leaf of v: a list item by item, an object key by
// key (keys stay), any other value through its text (an integer becomes a
// string).
func redactAll(v any, f redactor) any {
	switch x := v.(type) {
	case nil:
		return nil
	case string:
		return f(x)
	case []string:
		out := make([]string, len(x))
		for i, s := range x {
			out[i] = f(s)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = redactAll(e, f)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = redactAll(e, f)
		}
		return out
	default:
		return f(text(x))
	}
}

// Package transform is the rules engine: it turns the parameters of one
// Twilio request (a form or a decoded JSON document) and the time it was
// received into Zen events and their dedupe keys, following the rules of a
// transform package (pkg/pack). It is pure: no I/O, no NATS, an injectable
// clock. No event field name appears in this code; all of them come from
// the rule files.
package transform

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/zen-twilio/zen/pkg/pack"
	"github.com/zen-twilio/zen/pkg/zen"
)

// Result is one Zen event produced from a request.
type Result struct {
	Event zen.Event
	// DedupeKey is tw-<primary id>.<event type>[.<discriminator>...].
	DedupeKey   string
	Priority    int
	TwilioEvent string
	Rule        string
}

// Engine applies a package's rules. It is safe for concurrent use.
type Engine struct {
	// rules lists the rules of each Twilio event in file order.
	rules map[string][]*compiled
	// matched lists every rule with a match, in file order: the rules a
	// CloudEvent is dispatched to.
	matched []*compiled
	now     func() time.Time
	// redactKey is the HMAC key of hash redactions (WithRedactKey).
	redactKey []byte
}

// Option configures an Engine.
type Option func(*Engine)

// WithClock sets the clock of $processed_at (default time.Now).
func WithClock(now func() time.Time) Option { return func(e *Engine) { e.now = now } }

type compiled struct {
	rule        *pack.Rule
	destination string
	fields      []pack.Field
	// hash is the rule's hash redactor (the engine's key).
	hash redactor
}

// New compiles the rules of p. It refuses a package whose rules hash a
// field when no key was given (WithRedactKey), naming RedactKeyVar.
func New(p *pack.Package, opts ...Option) (*Engine, error) {
	if p == nil {
		return nil, fmt.Errorf("transform: nil package")
	}
	e := &Engine{rules: map[string][]*compiled{}, now: time.Now}
	for _, o := range opts {
		o(e)
	}
	if err := checkRedactKey(p, e.redactKey); err != nil {
		return nil, err
	}
	for i := range p.Rules {
		r := &p.Rules[i]
		c := &compiled{rule: r, destination: p.DestinationFor(r.EventType), fields: r.Payload, hash: hasher(e.redactKey)}
		e.rules[r.TwilioEvent] = append(e.rules[r.TwilioEvent], c)
		if len(r.Match) > 0 {
			e.matched = append(e.matched, c)
		}
	}
	return e, nil
}

// pick returns the rule for one request or CloudEvent.
//
// A CloudEvent names its own type, and an Event Streams sink receives every
// type it is subscribed to in one batch at one URL (issue 25), so a
// CloudEvent goes to the first rule of the package whose match it
// satisfies, whatever URL it reached. Anything else (and a CloudEvent no
// match claims) goes to the first rule of twilioEvent that matches it.
func (e *Engine) pick(twilioEvent string, src source) (*compiled, error) {
	if isCloudEvent(src) {
		for _, c := range e.matched {
			if c.matches(src) {
				return c, nil
			}
		}
	}
	cs, ok := e.rules[twilioEvent]
	if !ok {
		return nil, &RuleError{Rule: twilioEvent, Reason: ReasonUnknownEvent, Err: ErrUnknownEvent}
	}
	for _, c := range cs {
		if c.matches(src) {
			return c, nil
		}
	}
	return nil, &RuleError{Rule: twilioEvent, Reason: ReasonNoMatchingRule, Err: ErrNoMatchingRule}
}

// isCloudEvent reports whether src is a CloudEvent (it has a string
// specversion and type, CloudEvents 1.0's required attributes).
func isCloudEvent(src source) bool {
	if _, ok := src.(jsonSource); !ok {
		return false
	}
	v, ok := src.get("specversion")
	if _, isStr := v.(string); !ok || !isStr {
		return false
	}
	t, ok := src.get("type")
	_, isStr := t.(string)
	return ok && isStr
}

// matches reports whether every condition of the rule's match holds.
func (c *compiled) matches(src source) bool {
	for _, m := range c.rule.Match {
		v, ok := src.get(m.Path)
		if !ok || !m.Holds(text(v)) {
			return false
		}
	}
	return true
}

// source is the parameters of one request.
type source interface {
	// get returns the value at path: a string for forms; for JSON any
	// decoded value (string, json.Number, bool, map, slice).
	get(path string) (any, bool)
	// all returns every parameter: for $params.
	all() any
}

type formSource url.Values

func (f formSource) get(path string) (any, bool) {
	vs, ok := f[path]
	if !ok || len(vs) == 0 {
		return nil, false
	}
	return vs[0], true
}

// all is the form as an object: a key's value, or its values in order
// when Twilio repeated it.
func (f formSource) all() any {
	out := make(map[string]any, len(f))
	for k, vs := range f {
		switch len(vs) {
		case 0:
		case 1:
			out[k] = vs[0]
		default:
			out[k] = append([]string(nil), vs...)
		}
	}
	return out
}

type jsonSource struct{ doc any }

// all is the JSON element itself (for a CloudEvent: all its attributes
// and its data).
func (j jsonSource) all() any { return j.doc }

func (j jsonSource) get(path string) (any, bool) {
	cur := j.doc
	for path != "" {
		var part string
		part, path, _ = strings.Cut(path, ".")
		switch v := cur.(type) {
		case map[string]any:
			next, ok := v[part]
			if !ok {
				return nil, false
			}
			cur = next
		case []any:
			// A negative index counts from the end: attempts.-1 is the
			// latest attempt.
			i, err := strconv.Atoi(part)
			if err == nil && i < 0 {
				i += len(v)
			}
			if err != nil || i < 0 || i >= len(v) {
				return nil, false
			}
			cur = v[i]
		default:
			return nil, false
		}
	}
	if cur == nil {
		return nil, false
	}
	return cur, true
}

// Transform decodes a request body by its content type (form or JSON; a
// JSON array yields one event per element) and applies the rule of
// twilioEvent.
func (e *Engine) Transform(twilioEvent, contentType string, body []byte, receivedAt time.Time) ([]Result, error) {
	mt := "application/x-www-form-urlencoded"
	if contentType != "" {
		var err error
		mt, _, err = mime.ParseMediaType(contentType)
		if err != nil {
			return nil, &RuleError{Rule: twilioEvent, Reason: ReasonUnsupportedContent, Err: err}
		}
	}
	switch mt {
	case "application/x-www-form-urlencoded":
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, &RuleError{Rule: twilioEvent, Reason: ReasonUndecodableBody, Err: err}
		}
		r, err := e.FromForm(twilioEvent, form, receivedAt)
		if err != nil {
			return nil, err
		}
		return []Result{r}, nil
	case "application/json":
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		var doc any
		if err := dec.Decode(&doc); err != nil {
			return nil, &RuleError{Rule: twilioEvent, Reason: ReasonUndecodableBody, Err: err}
		}
		if dec.More() {
			return nil, &RuleError{Rule: twilioEvent, Reason: ReasonUndecodableBody, Err: fmt.Errorf("trailing data after the JSON document")}
		}
		return e.FromJSON(twilioEvent, doc, receivedAt)
	default:
		return nil, &RuleError{Rule: twilioEvent, Reason: ReasonUnsupportedContent, Err: fmt.Errorf("content type %q", mt)}
	}
}

// FromForm applies the first rule of twilioEvent that matches the form
// parameters.
func (e *Engine) FromForm(twilioEvent string, form url.Values, receivedAt time.Time) (Result, error) {
	c, err := e.pick(twilioEvent, formSource(form))
	if err != nil {
		return Result{}, err
	}
	return c.apply(formSource(form), receivedAt, e.now())
}

// FromJSON applies the rules to a decoded JSON document: an object is one
// event, an array one event per element (Event Streams delivers
// CloudEvents in batches), each element picked its own rule (see pick).
func (e *Engine) FromJSON(twilioEvent string, doc any, receivedAt time.Time) ([]Result, error) {
	items, isArray := doc.([]any)
	if !isArray {
		items = []any{doc}
	}
	if len(items) == 0 {
		return nil, &RuleError{Rule: twilioEvent, Reason: ReasonUndecodableBody, Err: fmt.Errorf("empty JSON array")}
	}
	now := e.now()
	out := make([]Result, 0, len(items))
	for i, it := range items {
		if _, ok := it.(map[string]any); !ok {
			return nil, &RuleError{Rule: twilioEvent, Reason: ReasonUndecodableBody, Err: fmt.Errorf("element %d is not a JSON object", i)}
		}
		c, err := e.pick(twilioEvent, jsonSource{it})
		if err != nil {
			return nil, err
		}
		r, err := c.apply(jsonSource{it}, receivedAt, now)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// first returns the first present, non-empty value of paths.
func first(src source, paths []string) (any, string, bool) {
	for _, p := range paths {
		if v, ok := src.get(p); ok {
			if s, isStr := v.(string); isStr && s == "" {
				continue
			}
			return v, p, true
		}
	}
	return nil, "", false
}

func (c *compiled) apply(src source, receivedAt, processedAt time.Time) (Result, error) {
	r := c.rule
	for _, req := range r.Required {
		if v, ok := src.get(req); !ok || v == "" {
			return Result{}, &RuleError{Rule: r.TwilioEvent, Field: req, Reason: ReasonMissingRequired, Err: fmt.Errorf("parameter %s is missing", req)}
		}
	}
	pid, _, ok := first(src, r.PrimaryID)
	if !ok {
		return Result{}, &RuleError{Rule: r.TwilioEvent, Field: strings.Join(r.PrimaryID, "|"), Reason: ReasonMissingRequired, Err: fmt.Errorf("primary id is missing")}
	}
	var key strings.Builder
	key.WriteString(zen.DedupePrefix)
	key.WriteString(text(pid))
	key.WriteByte('.')
	key.WriteString(r.EventType)
	for _, d := range r.Discriminators {
		if v, _, ok := first(src, d); ok {
			key.WriteByte('.')
			key.WriteString(strings.ToLower(text(v)))
		}
	}

	builtins := func(name string) (any, bool) {
		switch name {
		case "$received_at":
			return formatTime(receivedAt), true
		case "$processed_at":
			return formatTime(processedAt), true
		case "$twilio_event":
			return r.TwilioEvent, true
		case "$event_type":
			return r.EventType, true
		case "$params":
			return src.all(), true
		}
		return nil, false
	}
	payload := make(zen.Payload, 0, len(c.fields))
	for _, f := range c.fields {
		v, present, err := fieldValue(f, src, builtins)
		if err != nil {
			return Result{}, &RuleError{Rule: r.TwilioEvent, Field: f.Name, Reason: ReasonBadConversion, Err: err}
		}
		if present {
			payload = append(payload, zen.Field{Name: f.Name, Value: v})
		}
	}
	c.redactPayload(payload)
	return Result{
		Event: zen.Event{
			Destination: c.destination,
			EventType:   r.EventType,
			Timestamp:   formatTime(receivedAt),
			Payload:     payload,
		},
		DedupeKey:   key.String(),
		Priority:    r.Priority,
		TwilioEvent: r.TwilioEvent,
		Rule:        r.TwilioEvent,
	}, nil
}

// formatTime is RFC 3339 in UTC, with fractional seconds only when present.
func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func fieldValue(f pack.Field, src source, builtins func(string) (any, bool)) (any, bool, error) {
	if f.Type == "list" {
		return listValue(f, src)
	}
	var raw any
	found := false
	for _, p := range f.From {
		var v any
		var ok bool
		if strings.HasPrefix(p, "$") {
			v, ok = builtins(p)
		} else {
			v, ok = src.get(p)
		}
		if s, isStr := v.(string); ok && isStr && s == "" && f.Type != "string" {
			ok = false // an empty ErrorCode= is "absent" for an integer
		}
		if ok {
			raw, found = v, true
			break
		}
	}
	if !found {
		if f.Default == nil {
			return nil, false, nil
		}
		raw = *f.Default
	}
	v, err := convert(f.Type, raw)
	if err != nil {
		return nil, false, err
	}
	return v, true, nil
}

func listValue(f pack.Field, src source) (any, bool, error) {
	if f.FromIndexed == "" {
		v, _, ok := first(src, f.From)
		if !ok {
			return nil, false, nil
		}
		if arr, isArr := v.([]any); isArr {
			return arr, true, nil
		}
		return []any{text(v)}, true, nil
	}
	limit := 100
	if f.Count != "" {
		cv, ok := src.get(f.Count)
		if !ok {
			return nil, false, nil
		}
		n, err := strconv.Atoi(text(cv))
		if err != nil || n < 0 {
			return nil, false, fmt.Errorf("count parameter %s is not a non-negative integer", f.Count)
		}
		if n == 0 {
			return nil, false, nil
		}
		limit = min(n, limit)
	}
	var out []string
	for i := 0; i < limit; i++ {
		v, ok := src.get(f.FromIndexed + strconv.Itoa(i))
		if !ok {
			if f.Count != "" {
				return nil, false, fmt.Errorf("%s says %d items but %s%d is missing", f.Count, limit, f.FromIndexed, i)
			}
			break
		}
		out = append(out, text(v))
	}
	if len(out) == 0 {
		return nil, false, nil
	}
	return out, true, nil
}

// text renders a parameter value as a string.
func text(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return x.String()
	case bool:
		return strconv.FormatBool(x)
	case nil:
		return ""
	default:
		b, _ := json.Marshal(x)
		return string(b)
	}
}

var timeLayouts = []string{time.RFC3339Nano, time.RFC1123Z, time.RFC1123, time.RFC822Z, "2006-01-02 15:04:05"}

func convert(typ string, v any) (any, error) {
	switch typ {
	case "raw":
		return v, nil
	case "string":
		return text(v), nil
	case "lowercase":
		return strings.ToLower(text(v)), nil
	case "integer":
		switch x := v.(type) {
		case json.Number:
			n, err := x.Int64()
			if err != nil {
				return nil, fmt.Errorf("not an integer")
			}
			return n, nil
		default:
			n, err := strconv.ParseInt(strings.TrimSpace(text(v)), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("not an integer")
			}
			return n, nil
		}
	case "boolean":
		if b, ok := v.(bool); ok {
			return b, nil
		}
		b, err := strconv.ParseBool(strings.TrimSpace(text(v)))
		if err != nil {
			return nil, fmt.Errorf("not a boolean")
		}
		return b, nil
	case "time":
		s := strings.TrimSpace(text(v))
		for _, l := range timeLayouts {
			if t, err := time.Parse(l, s); err == nil {
				return formatTime(t), nil
			}
		}
		return nil, fmt.Errorf("not a time in RFC 3339 or RFC 1123 form")
	}
	return nil, fmt.Errorf("unknown conversion %q", typ)
}

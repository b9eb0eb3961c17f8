// Package pack loads a transform package (packages/transforms/<provider>/<v>/):
// package.yaml (metadata, endpoints, targets, flows) and the event rule files.
//
// Loading is strict: unknown keys are errors, every problem names its file,
// line and field (`package.yaml:14: flows[0].target: unknown target "x"`),
// `{{NAME}}` is substituted from an injectable lookup (a missing variable is
// an error naming it), and cross-references are validated. All problems are
// reported at once. A loaded *Package is immutable and safe for concurrent use.
package pack

import (
	"strings"

	"github.com/zen-twilio/zen/pkg/envconf"
	"github.com/zen-twilio/zen/pkg/streams"
)

// Package is a loaded, validated transform package.
type Package struct {
	Dir       string
	Meta      Meta
	Endpoints []Endpoint
	Targets   []Target
	Flows     []Flow
	Rules     []Rule
	// RuleFiles are the rule files read, as paths under Dir.
	RuleFiles []string
	// Warnings are findings that do not stop loading (e.g. a flow routing an
	// event its target does not accept). `zen package validate` reports them.
	Warnings []Finding
	// MissingEnv lists {{NAME}} variables that were unset, when loaded with
	// Options.AllowMissingEnv (otherwise a missing variable is an error).
	MissingEnv []string

	// byTwilio and byType list the rules of each Twilio event and of each
	// Zen event type, in file order.
	byTwilio map[string][]*Rule
	byType   map[string][]*Rule
}

// Meta is the package block.
type Meta struct {
	Name, Version, Provider, Visibility, Description string
	CanonicalLayer, CanonicalArea                    string
}

// Endpoint is where Twilio calls us.
type Endpoint struct {
	Name, Provider, URL string
	Auth                Auth
	Events              []string
	// Responses are static answers by Twilio event (e.g. TwiML for
	// incoming-message); events without one get an empty 200.
	Responses map[string]Response
	Line      int
	// Lines maps field paths ("events[2]") to their line, for findings.
	Lines map[string]int
}

// Response is a static HTTP answer.
type Response struct {
	ContentType string
	Body        string
}

// Auth describes an endpoint's or target's authentication. For a target
// (see TargetAuthTypes) Token is the secret its type sends: the bearer
// token, the api_key value, the basic password or the OAuth2 client secret.
type Auth struct {
	Type string
	// Key is the header an api_key goes in (an endpoint's: the header
	// checked).
	Key   string
	Token envconf.Secret
	// Username is basic auth's user.
	Username string
	// TokenURL, ClientID and Scopes are OAuth2 client credentials'.
	TokenURL, ClientID string
	Scopes             []string
}

// Target is a destination of events.
type Target struct {
	Name, Provider, URL string
	Auth                Auth
	// SigningSecret, when set, makes the forwarder sign requests with
	// Standard Webhooks headers.
	SigningSecret envconf.Secret
	// TLS, when set, is the mutual TLS the forwarder uses with the target.
	TLS *TLS
	// Delivery is the target's delivery policy; zero fields are the
	// forwarder's defaults.
	Delivery Delivery
	Events   []string
	Line     int
	Lines    map[string]int
}

// Flow routes events from an endpoint to a target.
type Flow struct {
	Name, Provider, Endpoint, Target string
	Events                           []string
	// Filter, when set, narrows the flow to the events it matches.
	Filter *Filter
	Line   int
	Lines  map[string]int
}

// FlowsTo returns the flows that route eventType to target, in file order.
// An event is delivered to the target when one of them has no filter or a
// filter it matches.
func (p *Package) FlowsTo(target, eventType string) []Flow {
	var out []Flow
	for _, f := range p.Flows {
		if f.Target == target && setOf(f.Events)[eventType] {
			out = append(out, f)
		}
	}
	return out
}

// Rule maps one Twilio event to one Zen event.
type Rule struct {
	// TwilioEvent is the webhook event, e.g. "message-status".
	TwilioEvent string
	// EventType is the Zen event type, e.g. "message.status".
	EventType string
	Priority  int
	// PrimaryID lists the parameter paths of the primary id, first present wins.
	PrimaryID []string
	// Discriminators are appended to the dedupe key when present, each a
	// list of fallback paths.
	Discriminators [][]string
	// Required parameters; a missing one dead-letters the request.
	Required []string
	// Match, when set, narrows the rule to the requests (or CloudEvents)
	// it matches; see [MatchCond]. Several rules may share a Twilio event
	// when each earlier one has a Match: the first that matches applies.
	Match   []MatchCond
	Payload []Field
	// Redact lists the event fields hashed or masked before the event
	// leaves (issue 24): personal data a warehouse must not hold. Empty
	// (the default) delivers every field as the payload computes it.
	Redact []Redaction
	File   string
	Line   int
}

// Redaction is one entry of a rule's redact: the value at Path, a payload
// field ("from_number") or a key inside a raw field ("twilio.From"), is
// replaced according to Mode (see [RedactModes]).
type Redaction struct {
	Path string
	Mode string
	Line int
}

// Redaction modes. Hash is a keyed HMAC-SHA256, stable for joins; Mask
// keeps the last 4 digits of a phone number and only the length of any
// other value. docs/transform-package.md defines both exactly.
const (
	RedactHash = "hash"
	RedactMask = "mask"
)

// RedactModes are the modes a rule's redact may use.
var RedactModes = []string{RedactHash, RedactMask}

// UsesHash reports whether a rule of p hashes a field (it then needs a key).
func (p *Package) UsesHash() bool {
	for _, r := range p.Rules {
		for _, d := range r.Redact {
			if d.Mode == RedactHash {
				return true
			}
		}
	}
	return false
}

// MatchCond is one entry of a rule's match: the value at Path (a parameter
// or a dotted JSON path such as type) must equal one of Patterns; a pattern
// ending in "*" matches every value that starts with what precedes it
// ("com.twilio.messaging.message.*"). A rule matches when all its
// conditions hold.
type MatchCond struct {
	Path     string
	Patterns []string
	Line     int
}

// Holds reports whether value satisfies one of the condition's patterns.
func (c MatchCond) Holds(value string) bool {
	for _, p := range c.Patterns {
		if prefix, wild := strings.CutSuffix(p, "*"); wild && strings.HasPrefix(value, prefix) {
			return true
		}
		if p == value {
			return true
		}
	}
	return false
}

// Field is one output field of a rule's payload.
type Field struct {
	Name string
	// From lists parameter paths (or built-ins such as $processed_at), first
	// present wins. JSON input uses dotted paths (data.verification_sid).
	From []string
	// Type is the conversion: string (default), integer, boolean, time,
	// lowercase, list, raw (the value as decoded: an object stays an
	// object, e.g. $params).
	Type string
	// Default is used when no source is present (converted by Type).
	Default *string
	// FromIndexed and Count collect Prefix0..PrefixN-1 into a list.
	FromIndexed string
	Count       string
	Line        int
}

// Conversions are the field types a rule may use.
var Conversions = []string{"string", "integer", "boolean", "time", "lowercase", "list", "raw"}

// Builtins are the values a rule may read besides parameters. $params is
// every parameter of the request (a form as an object of strings, a list
// for a repeated key; a CloudEvent as the whole CloudEvent object).
var Builtins = []string{"$received_at", "$processed_at", "$twilio_event", "$event_type", "$params"}

// RuleFor returns the first rule of a Twilio event.
func (p *Package) RuleFor(twilioEvent string) (*Rule, bool) {
	rs := p.byTwilio[twilioEvent]
	if len(rs) == 0 {
		return nil, false
	}
	return rs[0], true
}

// RuleForType returns the first rule producing a Zen event type.
func (p *Package) RuleForType(eventType string) (*Rule, bool) {
	rs := p.byType[eventType]
	if len(rs) == 0 {
		return nil, false
	}
	return rs[0], true
}

// Target returns the target with the given name.
func (p *Package) Target(name string) (*Target, bool) {
	for i := range p.Targets {
		if p.Targets[i].Name == name {
			return &p.Targets[i], true
		}
	}
	return nil, false
}

// Routes returns, per target, the event types the flows route to it and the
// target accepts, in flow order without duplicates: the filters of the
// forwarder consumers.
func (p *Package) Routes() []streams.Route {
	var out []streams.Route
	idx := map[string]int{}
	seen := map[string]bool{}
	for _, f := range p.Flows {
		t, ok := p.Target(f.Target)
		if !ok {
			continue
		}
		accepts := setOf(t.Events)
		for _, e := range f.Events {
			if !accepts[e] || seen[f.Target+"\x00"+e] {
				continue
			}
			seen[f.Target+"\x00"+e] = true
			i, ok := idx[f.Target]
			if !ok {
				i = len(out)
				idx[f.Target] = i
				out = append(out, streams.Route{Target: f.Target})
			}
			out[i].EventTypes = append(out[i].EventTypes, e)
		}
	}
	return out
}

// DestinationFor returns the first target a flow routes eventType to ("" if none).
func (p *Package) DestinationFor(eventType string) string {
	for _, r := range p.Routes() {
		for _, e := range r.EventTypes {
			if e == eventType {
				return r.Target
			}
		}
	}
	return ""
}

// Response returns the endpoint's static response for a Twilio event.
func (p *Package) Response(twilioEvent string) (Response, bool) {
	for _, e := range p.Endpoints {
		if r, ok := e.Responses[twilioEvent]; ok {
			return r, true
		}
	}
	return Response{}, false
}

func setOf(xs []string) map[string]bool {
	m := make(map[string]bool, len(xs))
	for _, x := range xs {
		m[x] = true
	}
	return m
}

// lineOf returns the line of a field path in lines, or def.
func lineOf(lines map[string]int, field string, def int) int {
	if l, ok := lines[field]; ok {
		return l
	}
	return def
}

package pack

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/zen-twilio/zen/pkg/envconf"
)

// Options change how Load treats the environment.
type Options struct {
	// AllowMissingEnv loads a package whose {{NAME}} variables are unset
	// (they become empty and are listed in Package.MissingEnv), for
	// `zen package inspect` on a machine without the secrets.
	AllowMissingEnv bool
}

// Load reads and validates the package in dir, substituting {{NAME}} from
// lookup (nil: the process environment). It returns an *Error listing every
// error finding, or the package with its warnings.
func Load(dir string, lookup envconf.Lookup) (*Package, error) {
	return LoadWith(dir, lookup, Options{})
}

// LoadWith is Load with options.
func LoadWith(dir string, lookup envconf.Lookup, opts Options) (*Package, error) {
	if lookup == nil {
		lookup = envconf.OS
	}
	l := &loader{dir: dir, lookup: lookup, opts: opts, c: &collector{}, missing: map[string]bool{}}
	p := l.load()
	errs, warns := l.c.split()
	if len(errs) > 0 {
		return nil, &Error{Findings: errs, Warnings: warns}
	}
	p.Warnings = warns
	for name := range l.missing {
		p.MissingEnv = append(p.MissingEnv, name)
	}
	sort.Strings(p.MissingEnv)
	return p, nil
}

type loader struct {
	dir     string
	lookup  envconf.Lookup
	opts    Options
	c       *collector
	missing map[string]bool
}

// placeholder matches {{NAME}}; before parsing it becomes a plain token so
// that unquoted placeholders (`token: {{X}}`, as the card writes them) stay
// scalars and keep their line.
var (
	placeholder = regexp.MustCompile(`\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}`)
	token       = regexp.MustCompile(`__ZENENV_([A-Za-z_][A-Za-z0-9_]*)__`)
)

// parse reads one YAML file into its document node.
func (l *loader) parse(name string) (*yaml.Node, string) {
	path := filepath.Join(l.dir, name)
	b, err := os.ReadFile(path)
	if err != nil {
		l.c.errorf(path, 0, "", "%v", err)
		return nil, path
	}
	b = placeholder.ReplaceAll(b, []byte("__ZENENV_${1}__"))
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			l.c.errorf(path, 0, "", "file is empty")
			return nil, path
		}
		var te *yaml.TypeError
		if errors.As(err, &te) {
			l.c.errorf(path, 0, "", "%v", err)
		} else {
			l.c.errorf(path, yamlLine(err), "", "invalid YAML: %v", err)
		}
		return nil, path
	}
	if len(doc.Content) == 0 {
		l.c.errorf(path, 0, "", "file is empty")
		return nil, path
	}
	return doc.Content[0], path
}

var lineRE = regexp.MustCompile(`line (\d+)`)

func yamlLine(err error) int {
	m := lineRE.FindStringSubmatch(err.Error())
	if m == nil {
		return 0
	}
	var n int
	fmt.Sscanf(m[1], "%d", &n)
	return n
}

func (l *loader) reader(file string) *nodeReader {
	return &nodeReader{file: file, c: l.c, sub: func(n *yaml.Node, path string) string {
		return token.ReplaceAllStringFunc(n.Value, func(t string) string {
			name := token.FindStringSubmatch(t)[1]
			v, ok := l.lookup(name)
			if !ok || v == "" {
				if l.opts.AllowMissingEnv {
					l.missing[name] = true
					return ""
				}
				l.c.errorf(file, n.Line, path, "environment variable %s is not set (referenced as {{%s}})", name, name)
				return ""
			}
			return v
		})
	}}
}

func (l *loader) load() *Package {
	p := &Package{Dir: l.dir, byTwilio: map[string][]*Rule{}, byType: map[string][]*Rule{}}
	root, file := l.parse("package.yaml")
	if root == nil {
		return p
	}
	r := l.reader(file)
	top := r.mapping(root, "", []string{"package", "endpoints", "targets", "flows", "rule_files"}, []string{"package", "endpoints", "targets", "flows"})
	l.meta(r, top["package"], p)
	for i, n := range r.seq(top["endpoints"], "endpoints") {
		p.Endpoints = append(p.Endpoints, l.endpoint(r, n, fmt.Sprintf("endpoints[%d]", i)))
	}
	for i, n := range r.seq(top["targets"], "targets") {
		p.Targets = append(p.Targets, l.target(r, n, fmt.Sprintf("targets[%d]", i)))
	}
	for i, n := range r.seq(top["flows"], "flows") {
		p.Flows = append(p.Flows, l.flow(r, n, fmt.Sprintf("flows[%d]", i)))
	}

	files := r.strs(top["rule_files"], "rule_files")
	if top["rule_files"] == nil {
		matches, _ := filepath.Glob(filepath.Join(l.dir, "*_events.yaml"))
		for _, m := range matches {
			files = append(files, filepath.Base(m))
		}
	}
	for _, f := range files {
		p.RuleFiles = append(p.RuleFiles, f)
		l.ruleFile(f, p)
	}
	for i := range p.Rules {
		rule := &p.Rules[i]
		// A rule without a match takes every request of its Twilio event:
		// a later rule of the same event could never apply.
		for _, prev := range p.byTwilio[rule.TwilioEvent] {
			if len(prev.Match) == 0 && rule.TwilioEvent != "" {
				l.c.errorf(rule.File, rule.Line, "twilio_event", "rule for %q is unreachable: the rule at %s:%d has no match and takes every request", rule.TwilioEvent, prev.File, prev.Line)
			}
		}
		p.byTwilio[rule.TwilioEvent] = append(p.byTwilio[rule.TwilioEvent], rule)
		p.byType[rule.EventType] = append(p.byType[rule.EventType], rule)
	}
	l.validate(p, file)
	return p
}

func (l *loader) meta(r *nodeReader, n *yaml.Node, p *Package) {
	m := r.mapping(n, "package", []string{"name", "version", "provider", "visibility", "description", "canonical_layer", "canonical_area"}, []string{"name", "version"})
	p.Meta = Meta{
		Name: r.str(m["name"], "package.name"), Version: r.str(m["version"], "package.version"),
		Provider: r.str(m["provider"], "package.provider"), Visibility: r.str(m["visibility"], "package.visibility"),
		Description: r.str(m["description"], "package.description"), CanonicalLayer: r.str(m["canonical_layer"], "package.canonical_layer"),
		CanonicalArea: r.str(m["canonical_area"], "package.canonical_area"),
	}
}

// endpointAuth reads `endpoints[].auth`, which says how Twilio's requests
// are authenticated (the ingester verifies X-Twilio-Signature).
func (l *loader) endpointAuth(r *nodeReader, n *yaml.Node, path string) Auth {
	m := r.mapping(n, path, []string{"type", "key", "value", "token"}, []string{"type"})
	a := Auth{Type: r.str(m["type"], path+".type"), Key: r.str(m["key"], path+".key"), Token: envconf.Secret(r.str(m["token"], path+".token"))}
	switch a.Type {
	case "api_key", "bearer", "none":
	default:
		if m["type"] != nil {
			r.c.errorf(r.file, m["type"].Line, path+".type", "unknown auth type %q (want api_key, bearer or none)", a.Type)
		}
	}
	if a.Type == "bearer" && m["token"] == nil && n != nil {
		r.c.errorf(r.file, n.Line, path+".token", "is required for bearer auth")
	}
	return a
}

func (l *loader) endpoint(r *nodeReader, n *yaml.Node, path string) Endpoint {
	m := r.mapping(n, path, []string{"name", "provider", "url", "auth", "events", "responses"}, []string{"name", "events"})
	e := Endpoint{Name: r.str(m["name"], path+".name"), Provider: r.str(m["provider"], path+".provider"),
		URL: r.str(m["url"], path+".url"), Events: r.strs(m["events"], path+".events"), Line: n.Line, Lines: lines(n)}
	if m["auth"] != nil {
		e.Auth = l.endpointAuth(r, m["auth"], path+".auth")
	}
	if rn := m["responses"]; rn != nil {
		e.Responses = map[string]Response{}
		if rn.Kind != yaml.MappingNode {
			r.c.errorf(r.file, rn.Line, path+".responses", "want a mapping of Twilio event to response")
		} else {
			for i := 0; i+1 < len(rn.Content); i += 2 {
				k := rn.Content[i].Value
				rp := path + ".responses." + k
				rm := r.mapping(rn.Content[i+1], rp, []string{"content_type", "body"}, []string{"content_type", "body"})
				e.Responses[k] = Response{ContentType: r.str(rm["content_type"], rp+".content_type"), Body: r.str(rm["body"], rp+".body")}
			}
		}
	}
	return e
}

func (l *loader) target(r *nodeReader, n *yaml.Node, path string) Target {
	m := r.mapping(n, path, []string{"name", "provider", "url", "auth", "signing_secret", "tls", "delivery", "events"}, []string{"name", "url", "auth", "events"})
	t := Target{Name: r.str(m["name"], path+".name"), Provider: r.str(m["provider"], path+".provider"),
		URL: r.str(m["url"], path+".url"), Events: r.strs(m["events"], path+".events"), Line: n.Line, Lines: lines(n)}
	if un := m["url"]; un != nil && t.URL != "" {
		checkTargetURL(r, un, path+".url", t.URL)
	}
	t.Auth = l.targetAuth(r, m["auth"], path+".auth")
	t.SigningSecret = envconf.Secret(r.str(m["signing_secret"], path+".signing_secret"))
	t.TLS = l.targetTLS(r, m["tls"], path+".tls")
	if t.TLS != nil && m["url"] != nil && !strings.HasPrefix(t.URL, "https://") {
		r.c.errorf(r.file, m["tls"].Line, path+".tls", "needs an https:// url, got %q", t.URL)
	}
	if dn := m["delivery"]; dn != nil {
		t.Delivery = l.delivery(r, dn, path+".delivery")
	}
	return t
}

// checkTargetURL records a target URL that is not an absolute http(s) URL
// with a host, naming the {{NAME}} variables it came from (issue 27:
// COMMS_WAREHOUSE_URL=warehouse used to be accepted).
func checkTargetURL(r *nodeReader, n *yaml.Node, path, v string) {
	u, err := url.Parse(v)
	if err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" {
		return
	}
	from := ""
	for _, t := range token.FindAllStringSubmatch(n.Value, -1) {
		from += ", from `" + t[1] + "`"
	}
	r.c.errorf(r.file, n.Line, path, "want an absolute http(s) URL with a host, like https://warehouse.example.com/v1/events, got %q%s", v, from)
}

func (l *loader) flow(r *nodeReader, n *yaml.Node, path string) Flow {
	m := r.mapping(n, path, []string{"name", "provider", "endpoint", "target", "events", "filter"}, []string{"name", "endpoint", "target", "events"})
	f := Flow{Name: r.str(m["name"], path+".name"), Provider: r.str(m["provider"], path+".provider"),
		Endpoint: r.str(m["endpoint"], path+".endpoint"), Target: r.str(m["target"], path+".target"),
		Events: r.strs(m["events"], path+".events"), Line: n.Line, Lines: lines(n)}
	if fn := m["filter"]; fn != nil {
		f.Filter = l.filter(r, fn, path+".filter")
	}
	return f
}

func (l *loader) ruleFile(name string, p *Package) {
	root, file := l.parse(name)
	if root == nil {
		return
	}
	r := l.reader(file)
	top := r.mapping(root, "", []string{"rules"}, []string{"rules"})
	for i, n := range r.seq(top["rules"], "rules") {
		p.Rules = append(p.Rules, l.rule(r, n, fmt.Sprintf("rules[%d]", i)))
	}
}

func (l *loader) rule(r *nodeReader, n *yaml.Node, path string) Rule {
	m := r.mapping(n, path, []string{"twilio_event", "event_type", "priority", "primary_id", "discriminators", "required", "match", "payload", "redact"},
		[]string{"twilio_event", "event_type", "priority", "primary_id", "payload"})
	rule := Rule{TwilioEvent: r.str(m["twilio_event"], path+".twilio_event"), EventType: r.str(m["event_type"], path+".event_type"),
		Priority: r.integer(m["priority"], path+".priority"), PrimaryID: r.strOrStrs(m["primary_id"], path+".primary_id"),
		Required: r.strs(m["required"], path+".required"), File: r.file, Line: n.Line}
	for i, d := range r.seq(m["discriminators"], path+".discriminators") {
		rule.Discriminators = append(rule.Discriminators, r.strOrStrs(d, fmt.Sprintf("%s.discriminators[%d]", path, i)))
	}
	rule.Match = l.match(r, m["match"], path+".match")
	if m["priority"] != nil && (rule.Priority < 0 || rule.Priority > 100) {
		r.c.errorf(r.file, m["priority"].Line, path+".priority", "must be between 0 and 100, got %d", rule.Priority)
	}
	names := map[string]bool{}
	for i, fn := range r.seq(m["payload"], path+".payload") {
		fp := fmt.Sprintf("%s.payload[%d]", path, i)
		f := l.field(r, fn, fp)
		if names[f.Name] {
			r.c.errorf(r.file, fn.Line, fp+".field", "duplicate output field %q", f.Name)
		}
		names[f.Name] = true
		rule.Payload = append(rule.Payload, f)
	}
	rule.Redact = l.redact(r, m["redact"], path+".redact", rule)
	return rule
}

// redact reads a rule's `redact`: a mapping of event field path to mode,
// kept in file order. Each path must name a payload field of the rule, or
// a key inside one of its raw fields (twilio.From): a typo would otherwise
// deliver the very value the rule meant to hide.
func (l *loader) redact(r *nodeReader, n *yaml.Node, path string, rule Rule) []Redaction {
	if n == nil {
		return nil
	}
	if n.Kind != yaml.MappingNode || len(n.Content) == 0 {
		r.c.errorf(r.file, n.Line, path, "rule %q: want a mapping of event field to mode (%s)", rule.TwilioEvent, strings.Join(RedactModes, " or "))
		return nil
	}
	var out []Redaction
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		kp := path + "." + k.Value
		if seen[k.Value] {
			r.c.errorf(r.file, k.Line, kp, "duplicate key")
		}
		seen[k.Value] = true
		d := Redaction{Path: k.Value, Mode: r.str(n.Content[i+1], kp), Line: k.Line}
		if !setOf(RedactModes)[d.Mode] {
			r.c.errorf(r.file, k.Line, kp, "rule %q: unknown redact mode %q (want %s)", rule.TwilioEvent, d.Mode, strings.Join(RedactModes, " or "))
		}
		if msg := redactPathProblem(rule.Payload, d.Path); msg != "" {
			r.c.errorf(r.file, k.Line, kp, "rule %q: %s", rule.TwilioEvent, msg)
		}
		out = append(out, d)
	}
	return out
}

// redactPathProblem says why path names no event field of payload ("" when
// it does): the whole path is a field, or its first segment is a raw field
// and the rest a key inside it.
func redactPathProblem(payload []Field, path string) string {
	head, rest, nested := strings.Cut(path, ".")
	for _, f := range payload {
		switch {
		case f.Name == path:
			return ""
		case nested && f.Name == head && f.Type != "raw":
			return fmt.Sprintf("%q is not an event field: %s has type %s, only a raw field has keys inside", path, head, f.Type)
		case nested && f.Name == head && (rest == "" || strings.Contains(rest, "..") || strings.HasSuffix(rest, ".")):
			return fmt.Sprintf("%q is not an event field: empty key", path)
		case nested && f.Name == head:
			return ""
		}
	}
	return fmt.Sprintf("%q is not an event field: the rule's payload has no field %s", path, head)
}

// match reads a rule's `match`: a mapping of parameter path to a pattern
// or a list of patterns, kept in file order.
func (l *loader) match(r *nodeReader, n *yaml.Node, path string) []MatchCond {
	if n == nil {
		return nil
	}
	if n.Kind != yaml.MappingNode || len(n.Content) == 0 {
		r.c.errorf(r.file, n.Line, path, "want a mapping of parameter to pattern(s)")
		return nil
	}
	var out []MatchCond
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if seen[k.Value] {
			r.c.errorf(r.file, k.Line, path+"."+k.Value, "duplicate key")
		}
		seen[k.Value] = true
		c := MatchCond{Path: k.Value, Patterns: r.strOrStrs(n.Content[i+1], path+"."+k.Value), Line: k.Line}
		if len(c.Patterns) == 0 {
			r.c.errorf(r.file, k.Line, path+"."+k.Value, "needs at least one pattern")
		}
		out = append(out, c)
	}
	return out
}

func (l *loader) field(r *nodeReader, n *yaml.Node, path string) Field {
	m := r.mapping(n, path, []string{"field", "from", "type", "default", "from_indexed", "count"}, []string{"field"})
	f := Field{Name: r.str(m["field"], path+".field"), From: r.strOrStrs(m["from"], path+".from"),
		Type: r.str(m["type"], path+".type"), FromIndexed: r.str(m["from_indexed"], path+".from_indexed"),
		Count: r.str(m["count"], path+".count"), Line: n.Line}
	if f.Type == "" {
		f.Type = "string"
	}
	if d := m["default"]; d != nil {
		v := r.str(d, path+".default")
		f.Default = &v
	}
	line := n.Line
	if m["type"] != nil {
		line = m["type"].Line
	}
	if !setOf(Conversions)[f.Type] {
		r.c.errorf(r.file, line, path+".type", "unknown conversion %q (want one of %s)", f.Type, strings.Join(Conversions, ", "))
	}
	switch {
	case f.Type == "list" && f.FromIndexed == "" && len(f.From) == 0:
		r.c.errorf(r.file, line, path+".from_indexed", "a list needs from_indexed (e.g. MediaUrl) or from")
	case f.Type != "list" && f.FromIndexed != "":
		r.c.errorf(r.file, line, path+".from_indexed", "only a list field may use from_indexed")
	case f.Type != "list" && len(f.From) == 0 && f.Default == nil:
		r.c.errorf(r.file, n.Line, path+".from", "is required (or a default)")
	}
	for _, src := range f.From {
		if strings.HasPrefix(src, "$") && !setOf(Builtins)[src] {
			r.c.errorf(r.file, n.Line, path+".from", "unknown built-in %q (want one of %s)", src, strings.Join(Builtins, ", "))
		}
	}
	return f
}

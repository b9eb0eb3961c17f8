package pack

import (
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Filter narrows a flow to some of its events (`flows[].filter`): every
// condition must hold. Payload conditions read the Zen event's payload
// fields; request conditions read the raw request the event came from
// (its URL's path and query, and the request headers stored with it).
type Filter struct {
	Payload []Condition
	Path    *Condition
	Query   []Condition
	Headers []Condition
}

// Condition tests one value. Exactly one operator is set: In (present and
// one of), NotIn (absent, or none of), Prefix (present and starting with),
// or Exists (present, or absent with false).
type Condition struct {
	// Field is the payload field, query parameter or header name.
	Field  string
	In     []string
	NotIn  []string
	Prefix string
	Exists *bool
	Line   int
}

// FilterInput is what a filter reads of one event.
type FilterInput struct {
	// Payload returns a payload field as text (numbers and booleans as in
	// the JSON), and whether it is present and not null.
	Payload func(field string) (string, bool)
	// URL is the public URL of the raw request (nil when unknown).
	URL *url.URL
	// Header returns a stored request header.
	Header func(name string) (string, bool)
}

// Empty reports whether the filter has no condition (it passes everything).
func (f *Filter) Empty() bool {
	return f == nil || (len(f.Payload) == 0 && f.Path == nil && len(f.Query) == 0 && len(f.Headers) == 0)
}

// UsesPayload reports whether the filter reads payload fields (the
// forwarder decodes the payload only then).
func (f *Filter) UsesPayload() bool { return f != nil && len(f.Payload) > 0 }

// Match reports whether in passes every condition.
func (f *Filter) Match(in FilterInput) bool {
	if f.Empty() {
		return true
	}
	for _, c := range f.Payload {
		if !c.match(in.Payload(c.Field)) {
			return false
		}
	}
	var q url.Values
	path, hasURL := "", in.URL != nil
	if hasURL {
		path, q = in.URL.Path, in.URL.Query()
	}
	if f.Path != nil && !f.Path.match(path, hasURL) {
		return false
	}
	for _, c := range f.Query {
		_, ok := q[c.Field]
		if !c.match(q.Get(c.Field), ok) {
			return false
		}
	}
	for _, c := range f.Headers {
		if !c.match(in.Header(c.Field)) {
			return false
		}
	}
	return true
}

func (c Condition) match(v string, present bool) bool {
	switch {
	case c.Exists != nil:
		return present == *c.Exists
	case c.NotIn != nil:
		return !present || !setOf(c.NotIn)[v]
	case !present:
		return false
	case c.In != nil:
		return setOf(c.In)[v]
	default:
		return strings.HasPrefix(v, c.Prefix)
	}
}

// String is the condition as the docs write it ("message_status in [failed undelivered]").
func (c Condition) String() string {
	switch {
	case c.Exists != nil:
		return fmt.Sprintf("%s exists=%v", c.Field, *c.Exists)
	case c.In != nil:
		return fmt.Sprintf("%s in %v", c.Field, c.In)
	case c.NotIn != nil:
		return fmt.Sprintf("%s not in %v", c.Field, c.NotIn)
	}
	return fmt.Sprintf("%s prefix %q", c.Field, c.Prefix)
}

// filter reads `flows[].filter`.
func (l *loader) filter(r *nodeReader, n *yaml.Node, path string) *Filter {
	m := r.mapping(n, path, []string{"payload", "request"}, nil)
	f := &Filter{Payload: r.conditions(m["payload"], path+".payload", false)}
	if rn := m["request"]; rn != nil {
		rp := path + ".request"
		rm := r.mapping(rn, rp, []string{"path", "query", "headers"}, nil)
		if pn := rm["path"]; pn != nil {
			c := r.condition(pn, rp+".path", "path")
			f.Path = &c
		}
		f.Query = r.conditions(rm["query"], rp+".query", false)
		f.Headers = r.conditions(rm["headers"], rp+".headers", true)
	}
	if f.Empty() {
		r.c.errorf(r.file, n.Line, path, "has no condition (remove it, or add payload or request conditions)")
	}
	return f
}

// conditions reads a mapping of name → condition, in name order.
func (r *nodeReader) conditions(n *yaml.Node, path string, headers bool) []Condition {
	if n == nil {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		r.c.errorf(r.file, n.Line, path, "want a mapping of name to condition, got %s", kindName(n))
		return nil
	}
	var out []Condition
	for i := 0; i+1 < len(n.Content); i += 2 {
		name := n.Content[i].Value
		if headers {
			name = http.CanonicalHeaderKey(name)
		}
		out = append(out, r.condition(n.Content[i+1], path+"."+n.Content[i].Value, name))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Field < out[j].Field })
	return out
}

// condition reads {in: [...]}, {not_in: [...]}, {prefix: s} or {exists: bool}.
func (r *nodeReader) condition(n *yaml.Node, path, field string) Condition {
	m := r.mapping(n, path, []string{"in", "not_in", "prefix", "exists"}, nil)
	c := Condition{Field: field, Line: n.Line}
	if len(m) != 1 {
		r.c.errorf(r.file, n.Line, path, "want exactly one of in, not_in, prefix, exists")
		return c
	}
	switch {
	case m["in"] != nil:
		c.In = r.strs(m["in"], path+".in")
		if c.In == nil {
			c.In = []string{}
		}
	case m["not_in"] != nil:
		c.NotIn = r.strs(m["not_in"], path+".not_in")
		if c.NotIn == nil {
			c.NotIn = []string{}
		}
	case m["prefix"] != nil:
		c.Prefix = r.str(m["prefix"], path+".prefix")
	default:
		v := r.str(m["exists"], path+".exists")
		if v != "true" && v != "false" {
			r.c.errorf(r.file, m["exists"].Line, path+".exists", "want true or false, got %q", v)
		}
		b := v == "true"
		c.Exists = &b
	}
	return c
}

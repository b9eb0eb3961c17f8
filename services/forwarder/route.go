package forwarder

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/zen-twilio/zen/pkg/pack"
	"github.com/zen-twilio/zen/pkg/zen"
)

// router decides which of a target's events it receives: an event goes to
// the target when one of the flows routing its type there has no filter, or
// a filter it matches. Safe for concurrent use.
type router struct {
	flows map[string][]pack.Flow // by event type
	// payload is set for the event types some filter reads the payload of.
	payload map[string]bool
}

func newRouter(p *pack.Package, target string, eventTypes []string) *router {
	r := &router{flows: map[string][]pack.Flow{}, payload: map[string]bool{}}
	for _, t := range eventTypes {
		r.flows[t] = p.FlowsTo(target, t)
		for _, f := range r.flows[t] {
			r.payload[t] = r.payload[t] || f.Filter.UsesPayload()
		}
	}
	return r
}

// pass reports whether an event of eventType with headers h and body
// passes one of the flows. An event whose payload cannot be read for a
// payload filter is an error (dead-lettered: it is not a Zen event).
func (r *router) pass(eventType string, h nats.Header, body []byte) (bool, error) {
	flows := r.flows[eventType]
	for _, f := range flows {
		if f.Filter.Empty() {
			return true, nil
		}
	}
	in, err := filterInput(h, body, r.payload[eventType])
	if err != nil {
		return false, err
	}
	for _, f := range flows {
		if f.Filter.Match(in) {
			return true, nil
		}
	}
	return false, nil
}

// filterInput is what the filters read of one event: its payload (decoded
// only when a filter reads it), the raw request's URL and the request
// headers the transformer carried onto the event.
func filterInput(h nats.Header, body []byte, payload bool) (pack.FilterInput, error) {
	in := pack.FilterInput{
		Payload: func(string) (string, bool) { return "", false },
		Header: func(name string) (string, bool) {
			vs := h.Values(name)
			if len(vs) == 0 {
				return "", false
			}
			return vs[0], true
		},
	}
	if u, err := url.Parse(h.Get(zen.HeaderRequestURL)); err == nil && h.Get(zen.HeaderRequestURL) != "" {
		in.URL = u
	}
	if !payload {
		return in, nil
	}
	var ev struct {
		Payload map[string]any `json:"payload"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&ev); err != nil {
		return in, fmt.Errorf("decode event payload: %w", err)
	}
	in.Payload = func(field string) (string, bool) {
		v, ok := ev.Payload[field]
		if !ok || v == nil {
			return "", false
		}
		return text(v), true
	}
	return in, nil
}

// text is a JSON value as a filter compares it: strings as they are,
// numbers and booleans as written, anything else as compact JSON.
func text(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return x.String()
	case bool:
		if x {
			return "true"
		}
		return "false"
	}
	b, _ := json.Marshal(v)
	return strings.TrimSpace(string(b))
}

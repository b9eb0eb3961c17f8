package main

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"

	"github.com/zen-twilio/zen/pkg/fixture"
	"github.com/zen-twilio/zen/pkg/transform"
)

// The vector files of TW-03 and G06, in the vectors directory.
const (
	formVectorsFile    = "form_encoding.json"
	transformCasesFile = "transform_cases.json"
)

// formVector is one form body and the parameters it must parse to, or
// Error when it must be refused (the ingester answers 400).
type formVector struct {
	Name   string              `json:"name"`
	Body   string              `json:"body"`
	Params map[string][]string `json:"params,omitempty"`
	Error  bool                `json:"error,omitempty"`
	Note   string              `json:"note,omitempty"`
}

// checkFormVectors (TW-03) parses each vector with url.ParseQuery, the
// parser of the ingester (before the signature is checked) and of the
// transformer.
func checkFormVectors(g *gateRun) (string, string) {
	path := filepath.Join(g.in.vectors, formVectorsFile)
	var file struct {
		Comment string       `json:"comment"`
		Vectors []formVector `json:"vectors"`
	}
	if err := decodeStrict(path, &file); err != nil {
		return statusFail, err.Error()
	}
	parsed, refused := 0, 0
	for _, v := range file.Vectors {
		if err := checkFormVector(v); err != nil {
			return statusFail, err.Error()
		}
		if v.Error {
			refused++
		} else {
			parsed++
		}
	}
	if parsed == 0 || refused == 0 {
		return statusFail, fmt.Sprintf("%s needs bodies that parse and bodies that are refused (has %d and %d)", path, parsed, refused)
	}
	return statusPass, fmt.Sprintf("url.ParseQuery (ingester and transformer) on %s: %d bodies parse to the expected parameters, %d malformed refused; real callbacks: TW-02", shortPath(path), parsed, refused)
}

func checkFormVector(v formVector) error {
	got, err := url.ParseQuery(v.Body)
	if v.Error {
		if err == nil {
			return fmt.Errorf("vector %q: parsed, want it refused", v.Name)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("vector %q: %v", v.Name, err)
	}
	if len(got) != len(v.Params) {
		return fmt.Errorf("vector %q: %d parameters, want %d", v.Name, len(got), len(v.Params))
	}
	for k, want := range v.Params {
		if !slices.Equal(got[k], want) {
			return fmt.Errorf("vector %q: %s = %q, want %q", v.Name, k, got[k], want)
		}
	}
	return nil
}

// transformCase is a fixture changed one way and what the engine must make
// of it: a dead letter with WantReason (and WantField), or events of
// WantEventType.
type transformCase struct {
	Name    string `json:"name"`
	Fixture string `json:"fixture"`
	// Event and ContentType replace the fixture's headers; Body its body;
	// Drop and Set remove and set form parameters.
	Event         string            `json:"event,omitempty"`
	ContentType   string            `json:"content_type,omitempty"`
	Body          string            `json:"body,omitempty"`
	Drop          []string          `json:"drop,omitempty"`
	Set           map[string]string `json:"set,omitempty"`
	WantReason    string            `json:"want_reason,omitempty"`
	WantField     string            `json:"want_field,omitempty"`
	WantEventType string            `json:"want_event_type,omitempty"`
	Note          string            `json:"note,omitempty"`
}

// checkTransformCases (G06) runs the engine on each case, offline, at the
// fixed clock.
func checkTransformCases(g *gateRun) (string, string) {
	if g.loadErr != nil {
		return statusFail, noPackage
	}
	if g.engErr != nil {
		return statusFail, g.engErr.Error()
	}
	path := filepath.Join(g.in.vectors, transformCasesFile)
	var file struct {
		Comment string          `json:"comment"`
		Cases   []transformCase `json:"cases"`
	}
	if err := decodeStrict(path, &file); err != nil {
		return statusFail, err.Error()
	}
	reasons := map[string]int{}
	events := 0
	for _, c := range file.Cases {
		if err := runTransformCase(g, c); err != nil {
			return statusFail, fmt.Sprintf("case %q: %v", c.Name, err)
		}
		if c.WantReason != "" {
			reasons[c.WantReason]++
		} else {
			events++
		}
	}
	if len(reasons) == 0 || events == 0 {
		return statusFail, path + " needs cases that dead-letter and cases that yield events"
	}
	return statusPass, fmt.Sprintf("%d cases of %s: %d yield the expected events, %d dead-letter with the expected reason (%d reasons)", len(file.Cases), shortPath(path), events, len(file.Cases)-events, len(reasons))
}

func runTransformCase(g *gateRun, c transformCase) error {
	if (c.WantReason == "") == (c.WantEventType == "") {
		return errors.New("set exactly one of want_reason and want_event_type")
	}
	f, err := fixture.Load(filepath.Join(g.in.fixtures, c.Fixture))
	if err != nil {
		return err
	}
	event, ct := f.Event(), f.ContentType()
	if c.Event != "" {
		event = c.Event
	}
	if c.ContentType != "" {
		ct = c.ContentType
	}
	body, err := caseBody(f, c)
	if err != nil {
		return err
	}
	results, err := g.engine.Transform(event, ct, body, g.now)
	if c.WantReason != "" {
		var re *transform.RuleError
		switch {
		case err == nil:
			return fmt.Errorf("transformed, want the dead letter %s", c.WantReason)
		case transform.ReasonOf(err) != c.WantReason:
			return fmt.Errorf("reason %s (%v), want %s", transform.ReasonOf(err), err, c.WantReason)
		case c.WantField != "" && (!errors.As(err, &re) || re.Field != c.WantField):
			return fmt.Errorf("%v, want the field %s named", err, c.WantField)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("%v, want %s", err, c.WantEventType)
	}
	for _, r := range results {
		if r.Event.EventType != c.WantEventType {
			return fmt.Errorf("event %s, want %s", r.Event.EventType, c.WantEventType)
		}
	}
	if len(results) == 0 {
		return fmt.Errorf("no event, want %s", c.WantEventType)
	}
	return nil
}

// caseBody is the fixture's body as sent, changed as the case says. A
// dropped parameter must be in the fixture, or the case proves nothing.
func caseBody(f *fixture.Fixture, c transformCase) ([]byte, error) {
	if c.Body != "" {
		return []byte(c.Body), nil
	}
	if len(c.Drop) == 0 && len(c.Set) == 0 {
		return f.Bytes()
	}
	if f.IsJSON() {
		return nil, errors.New("drop and set apply to form fixtures")
	}
	form, err := f.Form()
	if err != nil {
		return nil, err
	}
	for _, k := range c.Drop {
		if !form.Has(k) {
			return nil, fmt.Errorf("the fixture has no %s to drop", k)
		}
		form.Del(k)
	}
	for k, v := range c.Set {
		form.Set(k, v)
	}
	return []byte(form.Encode()), nil
}

package transform

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/zen-twilio/zen/pkg/fixture"
)

// Canonical returns JSON with object keys sorted and no insignificant
// whitespace: two documents are equal when their canonical forms are equal
// byte for byte. Numbers keep their text.
func Canonical(b []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("trailing data after the JSON document")
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// Render returns the events of a fixture as a golden file holds them: the
// single event as an object (an array when a request yields several),
// fields in rule order, indented two spaces, with a final newline.
func Render(results []Result) ([]byte, error) {
	var v any
	if len(results) == 1 {
		v = results[0].Event
	} else {
		evs := make([]any, len(results))
		for i, r := range results {
			evs[i] = r.Event
		}
		v = evs
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Run transforms a fixture with received time now (the engine's clock is
// the caller's to fix).
func Run(e *Engine, fixturePath string, now time.Time) ([]Result, error) {
	f, err := fixture.Load(fixturePath)
	if err != nil {
		return nil, err
	}
	body, err := f.Bytes()
	if err != nil {
		return nil, err
	}
	return e.Transform(f.Event(), f.ContentType(), body, now)
}

// GoldenMismatch is returned by CheckGolden when output and golden differ.
type GoldenMismatch struct {
	Golden    string
	Got, Want []byte // canonical forms
}

func (m *GoldenMismatch) Error() string {
	return fmt.Sprintf("%s: output differs from the golden\n%s", m.Golden, Diff(m.Want, m.Got))
}

// CheckGolden runs the fixture through the engine at now and compares the
// canonical JSON of the result with the canonical JSON of the golden file,
// byte for byte. The engine must use a clock fixed at now too. It is the one
// comparison behind `go test` and `zen package evidence`.
func CheckGolden(e *Engine, fixturePath, goldenPath string, now time.Time) error {
	results, err := Run(e, fixturePath, now)
	if err != nil {
		return fmt.Errorf("%s: %w", fixturePath, err)
	}
	got, err := Render(results)
	if err != nil {
		return err
	}
	want, err := os.ReadFile(goldenPath)
	if err != nil {
		return err
	}
	cg, err := Canonical(got)
	if err != nil {
		return err
	}
	cw, err := Canonical(want)
	if err != nil {
		return fmt.Errorf("%s: %w", goldenPath, err)
	}
	if !bytes.Equal(cg, cw) {
		return &GoldenMismatch{Golden: goldenPath, Got: cg, Want: cw}
	}
	return nil
}

// Diff shows where two canonical documents part: both split into one line
// per field, the lines that differ marked - (want) and + (got).
func Diff(want, got []byte) string {
	w, g := lines(want), lines(got)
	var b strings.Builder
	b.WriteString("mismatch (-want, +got):\n")
	wi, gi := map[string]bool{}, map[string]bool{}
	for _, l := range w {
		wi[l] = true
	}
	for _, l := range g {
		gi[l] = true
	}
	for _, l := range w {
		if !gi[l] {
			b.WriteString("- " + l + "\n")
		}
	}
	for _, l := range g {
		if !wi[l] {
			b.WriteString("+ " + l + "\n")
		}
	}
	return b.String()
}

// lines flattens a canonical JSON document into "path = value" lines.
func lines(doc []byte) []string {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return []string{string(doc)}
	}
	var out []string
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				walk(prefix+"."+k, e)
			}
		case []any:
			for i, e := range x {
				walk(fmt.Sprintf("%s[%d]", prefix, i), e)
			}
		default:
			b, _ := json.Marshal(x)
			out = append(out, prefix+" = "+string(b))
		}
	}
	walk("", v)
	return out
}

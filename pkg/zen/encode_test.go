package zen

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
)

// refPayload is Payload encoded the way it was before AppendJSON: every key
// and value through encoding/json. It is the reference AppendJSON must match.
type refPayload []Field

func (p refPayload) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, f := range p {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := json.Marshal(f.Name)
		if err != nil {
			return nil, err
		}
		v, err := json.Marshal(f.Value)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

type refEvent struct {
	Destination string     `json:"destination"`
	EventType   string     `json:"event_type"`
	Timestamp   string     `json:"timestamp"`
	Payload     refPayload `json:"payload"`
}

// reference is json.Marshal of e without any of this package's encoding.
func reference(e Event) ([]byte, error) {
	return json.Marshal(refEvent{e.Destination, e.EventType, e.Timestamp, refPayload(e.Payload)})
}

// checkSame fails unless AppendJSON, json.Marshal(e) and the reference agree
// byte for byte (or all fail).
func checkSame(t *testing.T, e Event) {
	t.Helper()
	want, wantErr := reference(e)
	got, err := e.AppendJSON([]byte("prefix"))
	viaStd, stdErr := json.Marshal(e)
	if (err != nil) != (wantErr != nil) || (stdErr != nil) != (wantErr != nil) {
		t.Fatalf("errors differ: AppendJSON %v, json.Marshal %v, reference %v", err, stdErr, wantErr)
	}
	if wantErr != nil {
		return
	}
	if !bytes.HasPrefix(got, []byte("prefix")) {
		t.Fatalf("AppendJSON dropped what b held: %q", got)
	}
	if got := got[len("prefix"):]; !bytes.Equal(got, want) {
		t.Fatalf("AppendJSON:\n got %s\nwant %s", got, want)
	}
	if !bytes.Equal(viaStd, want) {
		t.Fatalf("json.Marshal:\n got %s\nwant %s", viaStd, want)
	}
}

func TestAppendJSONMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{
		"", "SM0123456789abcdef", "+14155550100", "2026-06-24T10:00:00Z",
		`quote " and backslash \`, "<b>&amp;</b>", "tab\tnew\nline\r", "\x00\x01\x1f\x7f",
		"héllo 😀", "\u2028\u2029", "bad \xff\xfe utf-8", "\b\f",
		// Each byte that is escaped, alone in an otherwise plain string.
		"a\"b", "a\\b", "a<b", "a>b", "a&b", "a\x1fb", "a\x80b", "a\x7fb",
	} {
		checkSame(t, Event{Destination: s, EventType: s, Timestamp: s, Payload: Payload{
			{Name: s, Value: s},
			{Name: "n", Value: int64(math.MinInt64)},
			{Name: "m", Value: int64(math.MaxInt64)},
			{Name: "i", Value: 42},
			{Name: "t", Value: true},
			{Name: "f", Value: false},
			{Name: "z", Value: nil},
			{Name: "list", Value: []any{s, json.Number("12"), map[string]any{"k": s}}},
			{Name: "float", Value: 1.5},
		}})
	}
	checkSame(t, Event{})
	checkSame(t, Event{Payload: Payload{}})
	checkSame(t, Event{Payload: Payload{{Name: "nan", Value: math.NaN()}}}) // both refuse
}

func FuzzAppendJSON(f *testing.F) {
	f.Add("communications-warehouse", "message.status", "SM123", "delivered <&>", int64(7), true)
	f.Add("", "", "", "\xff\u2028\"\\", int64(-1), false)
	f.Fuzz(func(t *testing.T, dest, typ, name, val string, n int64, b bool) {
		checkSame(t, Event{Destination: dest, EventType: typ, Timestamp: val, Payload: Payload{
			{Name: name, Value: val}, {Name: val, Value: n}, {Name: "b", Value: b}, {Name: "l", Value: []any{val, name}},
		}})
	})
}

package ingester_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zen-twilio/zen/pkg/streams"
)

// A full TWILIO_RAW refuses the publish (DiscardNew) and the ingester
// answers 503 with Retry-After, so Twilio retries later; no request it
// answered 200 is dropped to make room (issue 22: with DiscardOld, 1,702 of
// 2,000 acknowledged webhooks were lost). Against a real server, with the
// shipped stream configuration except a small RAW_MAX_BYTES.
func TestFullRawStreamAnswers503AndDropsNothing(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	cfg := streams.DefaultConfig()
	// The shipped stream refuses new requests when full; only its size is
	// shrunk here, so that 200 requests fill it.
	if sc := cfg.RawStream(); sc.Discard != jetstream.DiscardNew || sc.MaxBytes <= 0 {
		t.Fatalf("shipped TWILIO_RAW: discard %v, max_bytes %d; want discard new with a byte bound", sc.Discard, sc.MaxBytes)
	}
	cfg.RawMaxBytes = 8 << 10
	if _, err := e.js.UpdateStream(context.Background(), cfg.RawStream()); err != nil {
		t.Fatal(err)
	}
	body := func(i int) string { return fmt.Sprintf("MessageSid=SM%032d&MessageStatus=delivered", i) }
	var accepted []string
	refused := 0
	for i := 0; i < 200 && refused < 3; i++ {
		r := e.post("/webhooks/twilio/message-status", "application/x-www-form-urlencoded", []byte(body(i)), nil)
		switch r.StatusCode {
		case 200:
			if refused > 0 {
				t.Fatalf("request %d answered 200 after the stream refused one", i)
			}
			accepted = append(accepted, body(i))
		case 503:
			if r.Header.Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
			refused++
		default:
			t.Fatalf("request %d: %d, want 200 or 503", i, r.StatusCode)
		}
	}
	if refused == 0 {
		t.Fatal("200 requests into an 8 KiB stream: none refused")
	}
	if got, want := e.rawCount(), uint64(len(accepted)); got != want {
		t.Fatalf("TWILIO_RAW holds %d messages, want the %d answered 200", got, want)
	}
	s, err := e.js.Stream(context.Background(), streams.StreamRaw)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range accepted {
		m, err := s.GetMsg(context.Background(), uint64(i+1))
		if err != nil {
			t.Fatalf("accepted request %d is gone: %v", i, err)
		}
		if string(m.Data) != want {
			t.Errorf("seq %d = %q, want %q", i+1, m.Data, want)
		}
	}
}

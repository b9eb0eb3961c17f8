package forwarder

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/zen-twilio/zen/pkg/pack"
	"github.com/zen-twilio/zen/pkg/worker"
)

func TestClassify(t *testing.T) {
	now := time.Date(2026, 6, 24, 10, 0, 0, 0, time.UTC)
	timeout := &net.OpError{Op: "dial", Err: context.DeadlineExceeded}
	cases := []struct {
		name       string
		status     int
		err        error
		retryAfter string
		kind       worker.Kind
		after      time.Duration
		reason     string
	}{
		{"200", 200, nil, "", worker.KindAck, 0, ""},
		{"204", 204, nil, "", worker.KindAck, 0, ""},
		{"network error", 0, errors.New("connection refused"), "", worker.KindRetry, 0, "network_error"},
		{"timeout", 0, timeout, "", worker.KindRetry, 0, "timeout"},
		{"408", 408, nil, "", worker.KindRetry, 0, "http_408"},
		{"429 retry-after seconds", 429, nil, "2", worker.KindRetry, 2 * time.Second, "http_429"},
		{"503 retry-after date", 503, nil, now.Add(90 * time.Second).Format("Mon, 02 Jan 2006 15:04:05 GMT"), worker.KindRetry, 90 * time.Second, "http_503"},
		{"503 retry-after capped", 503, nil, "100000", worker.KindRetry, 5 * time.Minute, "http_503"},
		{"500 bad retry-after", 500, nil, "soon", worker.KindRetry, 0, "http_500"},
		{"301", 301, nil, "", worker.KindDeadLetter, 0, "http_301"},
		{"400", 400, nil, "", worker.KindDeadLetter, 0, "http_400"},
		{"401", 401, nil, "", worker.KindDeadLetter, 0, "http_401"},
		{"404", 404, nil, "", worker.KindDeadLetter, 0, "http_404"},
		{"422", 422, nil, "", worker.KindDeadLetter, 0, "http_422"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := Classify(c.status, c.err, c.retryAfter, []byte("line1\nline2\x00"), now, 5*time.Minute, pack.RetryPolicy{}.Retries)
			if got.Kind != c.kind || got.After != c.after || got.Reason != c.reason {
				t.Errorf("Classify = %v after %s reason %q, want %v after %s reason %q", got.Kind, got.After, got.Reason, c.kind, c.after, c.reason)
			}
			if c.kind == worker.KindDeadLetter && got.Headers[HeaderHTTPBody] != "line1 line2 " {
				t.Errorf("body header %q is not a single clean line", got.Headers[HeaderHTTPBody])
			}
		})
	}
}

// A target's retry.statuses replace the default set: here 503 and 409 are
// retried, and a 500 is dead-lettered at once.
func TestClassifyWithTargetStatuses(t *testing.T) {
	now := time.Date(2026, 6, 24, 10, 0, 0, 0, time.UTC)
	retries := pack.RetryPolicy{Statuses: []pack.StatusRange{{Lo: 503, Hi: 503}, {Lo: 409, Hi: 409}}}.Retries
	for status, want := range map[int]worker.Kind{503: worker.KindRetry, 409: worker.KindRetry, 500: worker.KindDeadLetter, 429: worker.KindDeadLetter, 200: worker.KindAck} {
		if got := Classify(status, nil, "", nil, now, time.Minute, retries).Kind; got != want {
			t.Errorf("Classify(%d) = %v, want %v", status, got, want)
		}
	}
	if got := Classify(0, errors.New("connection refused"), "", nil, now, time.Minute, retries).Kind; got != worker.KindRetry {
		t.Errorf("network error = %v, want retry whatever the statuses", got)
	}
}

func TestSignKnownVector(t *testing.T) {
	// Standard Webhooks reference vector (standard-webhooks spec test suite).
	key := signingKey("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	got := Sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, []byte(`{"test": 2432232314}`))
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Errorf("Sign = %s, want %s", got, want)
	}
}

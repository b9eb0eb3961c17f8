package forwarder_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/zen-twilio/zen/pkg/envconf"
	"github.com/zen-twilio/zen/services/forwarder"
)

// shippedConfig is the forwarder as an operator runs it: DefaultConfig with
// only the connection, the package and its two variables set. No consumer,
// retry or timeout setting is changed.
func (e *env) shippedConfig(cfg *forwarder.Config) {
	d := forwarder.DefaultConfig()
	d.Conn, d.PackageDir, d.ListenAddr = cfg.Conn, cfg.PackageDir, "127.0.0.1:0"
	d.Lookup = envconf.MapLookup(map[string]string{
		"COMMS_WAREHOUSE_URL":   e.wh.srv.URL + "/events",
		"COMMS_WAREHOUSE_TOKEN": testToken,
	})
	*cfg = d
}

// gaps returns the time between consecutive requests.
func gaps(reqs []request) []time.Duration {
	var out []time.Duration
	for i := 1; i < len(reqs); i++ {
		out = append(out, reqs[i].at.Sub(reqs[i-1].at))
	}
	return out
}

// checkGaps fails unless each gap is want[i], no earlier and at most slack
// later (the server's redelivery timer and a loaded machine).
func checkGaps(t *testing.T, got, want []time.Duration) {
	t.Helper()
	const slack = 900 * time.Millisecond
	if len(got) < len(want) {
		t.Fatalf("%d gaps, want %d", len(got), len(want))
	}
	for i, w := range want {
		if got[i] < w-20*time.Millisecond || got[i] > w+slack {
			t.Errorf("gap before attempt %d = %s, want %s (all gaps %v)", i+2, got[i].Round(time.Millisecond), w, got)
		}
	}
}

// The documented schedule, 1 s doubling, with the shipped defaults against a
// real nats-server: attempts at 0, 1, 3 and 7 s. (With the consumer BackOff
// shipped before, they came at 0, 1, 33 and 127 s.)
func TestShippedRetryScheduleIsTheDocumentedOne(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.wh.setAnswer(func(w http.ResponseWriter, nth int) {
		if nth < 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	e.start(e.shippedConfig)
	e.event("tw-SMsched.message.status.delivered", "")
	reqs := waitPosts(t, e.wh, 4, 30*time.Second)
	checkGaps(t, gaps(reqs), []time.Duration{time.Second, 2 * time.Second, 4 * time.Second})
	e.drained(10 * time.Second)
}

// Retry-After is honoured on every retry, the third included, with the
// shipped defaults.
func TestRetryAfterOnEveryRetry(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.wh.setAnswer(func(w http.ResponseWriter, nth int) {
		if nth < 3 {
			w.Header().Set("Retry-After", "2")
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	e.start(e.shippedConfig)
	e.event("tw-SMra.message.status.sent", "")
	reqs := waitPosts(t, e.wh, 4, 30*time.Second)
	checkGaps(t, gaps(reqs), []time.Duration{2 * time.Second, 2 * time.Second, 2 * time.Second})
	e.drained(10 * time.Second)
}

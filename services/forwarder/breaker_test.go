package forwarder_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zen-twilio/zen/pkg/natstest"
	"github.com/zen-twilio/zen/pkg/streams"
)

// A failing target opens its circuit: no POST while it is open, the
// target's consumer paused with the events waiting in ZEN_EVENTS, then a
// probe that closes it, and every event delivered once, the waiting ones on
// their first attempt.
func TestCircuitOpensHoldsEventsInTheStreamAndCloses(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var failing atomic.Bool
	failing.Store(true)
	wh := newWarehouse(t)
	wh.setAnswer(func(w http.ResponseWriter, _ int) {
		if failing.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	r := e.startPackage(`targets:
  - name: flaky
    url: "{{URL}}"
    auth: {type: none}
    events: [message.status]
    delivery:
      concurrency: 2
      retry: {initial: 100ms, max: 200ms}
      circuit_breaker: {consecutive_failures: 3, open_for: 3s}
flows:
  - {name: f, endpoint: twilio-webhook, target: flaky, events: [message.status]}
`, map[string]string{"URL": wh.srv.URL})
	const n = 20
	for i := range n {
		e.status(fmt.Sprintf("SMcb%02d", i), "sent", "")
	}
	waitPosts(t, wh, 3, 10*time.Second)
	// Open: the consumer is paused on the server, the events wait there.
	natstest.CheckFor(t, 5*time.Second, func() error {
		c, err := e.js.Consumer(e.ctx, streams.StreamEvents, streams.ForwarderConsumer("flaky"))
		if err != nil {
			return err
		}
		info, err := c.Info(e.ctx)
		if err != nil {
			return err
		}
		// Out of the stream: the 3 that failed (awaiting their retry), and
		// at most 2 × concurrency delivered to this replica (waiting at the
		// gate, or in the client's pull buffer), and the half-open probe
		// when open_for (3 s) passes before this check does.
		if want := n - 3 - 1 - 2*2; !info.Paused || int(info.NumPending) < want {
			return fmt.Errorf("paused %v with %d events pending in the stream, want paused with >= %d", info.Paused, info.NumPending, want)
		}
		return nil
	})
	if m := scrape(t, r.svc.Handler(), "/metrics"); !strings.Contains(m, `zen_forwarder_circuit_state{target="flaky"} 2`) {
		t.Errorf("metrics lack the open circuit:\n%s", grepLines(m, "circuit"))
	}
	opened := len(wh.requests())
	time.Sleep(1500 * time.Millisecond) // well inside open_for
	if got := len(wh.requests()); got != opened {
		t.Errorf("%d POSTs while the circuit was open (%d before)", got-opened, opened)
	}
	failing.Store(false)
	e.drainedTarget("flaky", 30*time.Second)
	reqs := wh.requests()
	if gap := reqs[opened].at.Sub(reqs[opened-1].at); gap < 2900*time.Millisecond {
		t.Errorf("the probe came %s after the last failure, want >= open_for (3s)", gap)
	}
	posts := wh.posts()
	if len(posts) != n {
		t.Errorf("%d events POSTed, want %d", len(posts), n)
	}
	if len(reqs) > n+opened {
		t.Errorf("%d POSTs for %d events with %d failures: some event was POSTed after its delivery", len(reqs), n, opened)
	}
	m := scrape(t, r.svc.Handler(), "/metrics")
	for _, want := range []string{`zen_forwarder_circuit_state{target="flaky"} 0`, `zen_forwarder_circuit_transitions_total{target="flaky",to="open"} 1`,
		`zen_forwarder_circuit_transitions_total{target="flaky",to="closed"} 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s:\n%s", want, grepLines(m, "circuit"))
		}
	}
	// The events that waited spent no attempt: each was delivered on its
	// first (only those POSTed before the circuit opened were retried).
	retried := 0
	for i := range n {
		as := e.attempts(fmt.Sprintf("tw-SMcb%02d.message.status.sent", i))
		// A redelivery after the delivery (the ack raced the pause) is
		// recorded as a duplicate and not POSTed (checked above): drop it.
		for len(as) > 1 && as[len(as)-1].Outcome == "duplicate" {
			as = as[:len(as)-1]
		}
		if len(as) == 0 || as[len(as)-1].Outcome != "delivered" {
			t.Errorf("SMcb%02d attempts %q, want delivered last (then only duplicates)", i, outcomes(as))
			continue
		}
		if as[len(as)-1].Attempt > 1 {
			retried++
		}
	}
	if retried > opened {
		t.Errorf("%d events delivered after their first attempt, but only %d failed", retried, opened)
	}
}

// A rate limit holds within 10% over 10 s.
func TestRateLimitHolds(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	wh := newWarehouse(t)
	e.startPackage(`targets:
  - name: limited
    url: "{{URL}}"
    auth: {type: none}
    events: [message.status]
    delivery: {rate_limit: {per_second: 20, burst: 1}}
flows:
  - {name: l, endpoint: twilio-webhook, target: limited, events: [message.status]}
`, map[string]string{"URL": wh.srv.URL})
	for i := range 300 {
		e.status(fmt.Sprintf("SMrl%03d", i), "sent", "")
	}
	reqs := waitPosts(t, wh, 2, 10*time.Second)
	start := reqs[0].at
	time.Sleep(time.Until(start.Add(10*time.Second + 200*time.Millisecond)))
	in := 0
	for _, r := range wh.requests() {
		if r.at.Before(start.Add(10 * time.Second)) {
			in++
		}
	}
	// 20/s with a burst of 1: 1 + 10 × 20 in the first 10 s.
	if in < 181 || in > 221 {
		t.Errorf("%d POSTs in 10 s, want 201 ± 10%% (20/s)", in)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

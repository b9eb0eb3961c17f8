package forwarder_test

import (
	"runtime"
	"strings"
	"testing"

	"github.com/zen-twilio/zen/pkg/buildinfo"
)

// TestMetricsAtZeroFromStart: right after start, before any event, each
// target's series are on /metrics at 0 (panels and rate() show 0, not "No
// data"): attempts by class, dedupe hits, filtered events, dead letters
// and worker outcomes by reason (http_<status> as a retry or a dead letter
// by the default retry policy), the circuit; and zen_build_info.
func TestMetricsAtZeroFromStart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.start(nil)
	body := scrape(t, r.svc.Handler(), "/metrics")
	const tg = `target="communications-warehouse"`
	want := []string{
		`zen_forwarder_attempts_total{class="5xx",` + tg + `} 0`,
		`zen_forwarder_attempts_total{class="error",` + tg + `} 0`,
		`zen_forwarder_dedupe_hits_total{` + tg + `} 0`,
		`zen_forwarder_filtered_total{` + tg + `} 0`,
		`zen_forwarder_in_flight{` + tg + `} 0`,
		`zen_forwarder_circuit_state{` + tg + `} 0`,
		`zen_forwarder_circuit_transitions_total{` + tg + `,to="open"} 0`,
		`zen_forwarder_dead_letters_total{reason="http_400",` + tg + `} 0`,
		`zen_forwarder_dead_letters_total{reason="http_503",` + tg + `} 0`,
		`zen_forwarder_dead_letters_total{reason="network_error",` + tg + `} 0`,
		`zen_forwarder_dead_letters_total{reason="undecodable_event",` + tg + `} 0`,
		`zen_worker_messages_total{outcome="ack",reason="",stage="forwarder",` + tg + `} 0`,
		`zen_worker_messages_total{outcome="retry",reason="http_503",stage="forwarder",` + tg + `} 0`,
		`zen_worker_messages_total{outcome="retry",reason="timeout",stage="forwarder",` + tg + `} 0`,
		`zen_worker_messages_total{outcome="dead_letter",reason="http_404",stage="forwarder",` + tg + `} 0`,
		`zen_worker_messages_total{outcome="dead_letter",reason="no_dedupe_key",stage="forwarder",` + tg + `} 0`,
		`zen_build_info{goversion="` + runtime.Version() + `",revision="` + buildinfo.Read().Revision + `",service="forwarder",version="dev"} 1`,
	}
	for _, w := range want {
		if !strings.Contains(body, w+"\n") {
			t.Errorf("/metrics at start lacks %s", w)
		}
	}
	// A 404 is never retried by default, a 503 always.
	for _, never := range []string{
		`zen_worker_messages_total{outcome="retry",reason="http_404",stage="forwarder",` + tg + `}`,
	} {
		if strings.Contains(body, never) {
			t.Errorf("/metrics has %s, a reason the default policy never gives", never)
		}
	}
}

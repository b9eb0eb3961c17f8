package worker

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestOutcomesStartAtZero: before any message, the known outcomes are
// series at 0: ack, the worker's own reasons, and the handler's reasons
// (a retry reason under dead_letter too, for the last delivery).
func TestOutcomesStartAtZero(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	if _, err := newMetrics(reg, "transformer", []string{"publish_failed"}, []string{"missing_required"}); err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	want.WriteString("# HELP zen_worker_messages_total Messages handled, by outcome (ack, retry, dead_letter) and reason.\n# TYPE zen_worker_messages_total counter\n")
	for _, s := range []string{
		`outcome="ack",reason=""`,
		`outcome="dead_letter",reason="missing_required"`,
		`outcome="dead_letter",reason="panic"`,
		`outcome="dead_letter",reason="publish_failed"`,
		`outcome="retry",reason="dlq_unavailable"`,
		`outcome="retry",reason="panic"`,
		`outcome="retry",reason="publish_failed"`,
	} {
		want.WriteString("zen_worker_messages_total{" + s + `,stage="transformer"} 0` + "\n")
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want.String()), "zen_worker_messages_total"); err != nil {
		t.Error(err)
	}
}

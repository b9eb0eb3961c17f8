package forwarder

import (
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"

	"github.com/zen-twilio/zen/pkg/streams"
)

// A record whose publish was not acknowledged is counted where it belongs:
// a dedupe entry on its own counter, an attempt record on the other.
func TestUnacknowledgedRecordsAreCounted(t *testing.T) {
	s := &Service{log: zap.NewNop(), metrics: newMetrics(prometheus.NewRegistry())}
	key := streams.KVKey("communications-warehouse", "tw-SM1.message.status.sent")
	failed := errors.New("no quorum")
	s.dedupeRecordFailed(key, failed)
	s.recordStored(false, failed)
	s.recordStored(false, failed)
	s.recordStored(false, nil)
	if got := testutil.ToFloat64(s.metrics.dedupeRecordsFailed); got != 1 {
		t.Errorf("dedupe records failed = %v, want 1", got)
	}
	if got := testutil.ToFloat64(s.metrics.recordsFailed); got != 2 {
		t.Errorf("attempt records failed = %v, want 2", got)
	}
}

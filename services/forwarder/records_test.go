package forwarder

import (
	"errors"
	"testing"

	"github.com/nats-io/nats.go"
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
	if got := dedupeKeyOf(dedupeSubjectPrefix + key); got != key {
		t.Fatalf("dedupeKeyOf = %q, want %q", got, key)
	}
	if got := dedupeKeyOf(streams.AttemptsSubject("communications-warehouse")); got != "" {
		t.Fatalf("dedupeKeyOf(attempts subject) = %q, want empty", got)
	}
	failed := errors.New("no quorum")
	s.asyncPublishFailed(nil, nats.NewMsg(dedupeSubjectPrefix+key), failed)
	s.asyncPublishFailed(nil, nats.NewMsg(streams.AttemptsSubject("communications-warehouse")), failed)
	s.asyncPublishFailed(nil, nats.NewMsg(streams.AttemptsSubject("communications-warehouse")), failed)
	if got := testutil.ToFloat64(s.metrics.dedupeRecordsFailed); got != 1 {
		t.Errorf("dedupe records failed = %v, want 1", got)
	}
	if got := testutil.ToFloat64(s.metrics.recordsFailed); got != 2 {
		t.Errorf("attempt records failed = %v, want 2", got)
	}
}

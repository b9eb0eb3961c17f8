package streams_test

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/zen-twilio/zen/pkg/natstest"
	"github.com/zen-twilio/zen/pkg/streams"
)

// BenchmarkDuplicateWindowHeap measures the NATS server memory a message
// holds while it is inside TWILIO_RAW's duplicate window: the growth of the
// heap (server and client share this process) over b.N publishes, once the
// file store's block caches expired, per message, with and without a
// Nats-Msg-Id as long as the ingester's. Sizing guidance in docs/configuration.md comes from it:
//
//	go test ./pkg/streams -run '^$' -bench DuplicateWindowHeap -benchtime 100000x
func BenchmarkDuplicateWindowHeap(b *testing.B) {
	for _, withID := range []bool{false, true} {
		name := "without-msg-id"
		if withID {
			name = "with-msg-id"
		}
		b.Run(name, func(b *testing.B) {
			srv := natstest.Run(b)
			js := srv.JetStream(b)
			natstest.ApplyStreams(b, js, streams.DefaultConfig())
			before := settledHeap()
			i := 0
			for b.Loop() {
				i++
				m := &nats.Msg{Subject: streams.RawSubject("message-status"), Data: []byte("MessageSid=SM1"), Header: nats.Header{}}
				if withID {
					// As long as the ingester's: "t-" and an idempotency token.
					m.Header.Set("Nats-Msg-Id", fmt.Sprintf("t-AC00000000000000000000000000000001-%020d-0123456789", i))
				}
				if _, err := js.PublishMsgAsync(m); err != nil {
					b.Fatal(err)
				}
			}
			<-js.PublishAsyncComplete()
			b.StopTimer()
			b.ReportMetric(float64(int64(settledHeap())-int64(before))/float64(b.N), "heap-B/msg")
		})
	}
}

// settledHeap is the live heap once the file store's message block caches
// have expired (nats-server's CacheExpire: 10 s idle).
func settledHeap() uint64 {
	time.Sleep(15 * time.Second)
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

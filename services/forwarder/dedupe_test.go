package forwarder

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zen-twilio/zen/pkg/natsconn"
	"github.com/zen-twilio/zen/pkg/natstest"
	"github.com/zen-twilio/zen/pkg/streams"
)

// readingService is a Service that can bind the dedupe bucket (nothing
// else of it is set up).
func readingService(tb testing.TB, nc *nats.Conn, js jetstream.JetStream) *Service {
	r, err := natsconn.NewRequests(nc, natsTimeout)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := r.Stop(); err != nil {
			tb.Error(err)
		}
	})
	return &Service{nc: nc, js: js, requests: r}
}

// The direct read answers as kv.Get does for every state a key can be in,
// against a real bucket made as the streams job makes it; and that bucket
// is read directly.
func TestDirectReadAgreesWithKVGet(t *testing.T) {
	t.Parallel()
	srv := natstest.Run(t)
	js := srv.JetStream(t)
	natstest.ApplyStreams(t, js, streams.DefaultConfig())
	ctx := context.Background()
	nc := srv.Conn(t)
	sjs, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	direct, err := readingService(t, nc, sjs).dedupeBucket(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !direct.direct {
		t.Fatal("the bucket streams.Apply makes is read through kv.Get, not directly")
	}
	viaKV := &dedupe{kv: direct.kv, requests: direct.requests}
	kv := direct.kv

	key := func(s string) string {
		return streams.KVKey("communications-warehouse", "tw-"+s+".message.status.sent")
	}
	for _, tc := range []struct {
		name  string
		setup func(k string) error
		want  bool
	}{
		{"never written", func(string) error { return nil }, false},
		{"delivered", func(k string) error { _, err := kv.PutString(ctx, k, "delivered:7:1700000000000"); return err }, true},
		{"written by markDelivered", func(k string) error {
			stored := make(chan error, 1)
			if err := direct.markDelivered(k, time.Hour, 9, time.Now(), func(_ bool, err error) { stored <- err }); err != nil {
				return err
			}
			return <-stored
		}, true},
		{"older scheme", func(k string) error { _, err := kv.PutString(ctx, k, "pending:5"); return err }, false},
		{"empty value", func(k string) error { _, err := kv.PutString(ctx, k, ""); return err }, false},
		{"deleted", func(k string) error {
			if _, err := kv.PutString(ctx, k, "delivered:1:1"); err != nil {
				return err
			}
			return kv.Delete(ctx, k)
		}, false},
		{"purged", func(k string) error {
			if _, err := kv.PutString(ctx, k, "delivered:1:1"); err != nil {
				return err
			}
			return kv.Purge(ctx, k)
		}, false},
		{"delivered again after a delete", func(k string) error {
			if err := kv.Delete(ctx, k); err != nil {
				return err
			}
			_, err := kv.PutString(ctx, k, "delivered:2:2")
			return err
		}, true},
	} {
		k := key("SM" + tc.name)
		if err := tc.setup(k); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		got, err := direct.isDelivered(ctx, k)
		ref, rerr := viaKV.isDelivered(ctx, k)
		if err != nil || rerr != nil {
			t.Fatalf("%s: direct read: %v, kv.Get: %v", tc.name, err, rerr)
		}
		if got != tc.want || ref != tc.want {
			t.Errorf("%s: direct read says %v, kv.Get %v, want %v", tc.name, got, ref, tc.want)
		}
	}

	// No bucket: both fail (the worker retries), neither says "not delivered".
	if err := js.DeleteKeyValue(ctx, streams.BucketDedupe); err != nil {
		t.Fatal(err)
	}
	if _, err := direct.isDelivered(ctx, key("SMgone")); err == nil {
		t.Error("direct read without a bucket: no error")
	}
	if _, err := viaKV.isDelivered(ctx, key("SMgone")); err == nil {
		t.Error("kv.Get without a bucket: no error")
	}
}

// A delivered key lives its own TTL (Nats-TTL, issue 22): a key of a
// classic callback is forgotten after DedupeTTL while a verification key,
// kept DedupeLongTTL for Event Streams' late retries, is still delivered.
// The bucket is the one streams.Apply makes from the shipped defaults.
func TestDeliveredKeyLivesItsTTL(t *testing.T) {
	t.Parallel()
	srv := natstest.Run(t)
	cfg := streams.DefaultConfig()
	natstest.ApplyStreams(t, srv.JetStream(t), cfg)
	nc := srv.Conn(t)
	sjs, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	d, err := readingService(t, nc, sjs).dedupeBucket(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DedupeTTL = time.Second // the shipped 30 min, shortened for the test
	short := streams.KVKey("communications-warehouse", "tw-SM1.message.status.delivered")
	long := streams.KVKey("communications-warehouse", "tw-VE1.verification.status.approved")
	for _, k := range []struct{ key, typ string }{{short, "message.status"}, {long, "verification.status"}} {
		stored := make(chan error, 1)
		if err := d.markDelivered(k.key, cfg.DedupeTTLFor(k.typ), 1, time.Now(), func(_ bool, err error) { stored <- err }); err != nil {
			t.Fatal(err)
		}
		if err := <-stored; err != nil {
			t.Fatalf("store %s: %v", k.key, err)
		}
	}
	if got, want := cfg.DedupeTTLFor("verification.status"), 5*time.Hour; got != want {
		t.Errorf("DedupeTTLFor(verification.status) = %s, want %s", got, want)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		ok, err := d.isDelivered(ctx, short)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a key with a 1 s TTL is still delivered after 15 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if ok, err := d.isDelivered(ctx, long); err != nil || !ok {
		t.Errorf("verification key after the short TTL: delivered = %v, %v; want true", ok, err)
	}
}

// BenchmarkDedupeRead: the read before every POST, direct against kv.Get,
// in one run against a real bucket; cpu-ns/op is the process's CPU (client
// and server) per read.
func BenchmarkDedupeRead(b *testing.B) {
	srv := natstest.Run(b)
	natstest.ApplyStreams(b, srv.JetStream(b), streams.DefaultConfig())
	nc := srv.Conn(b)
	sjs, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	direct, err := readingService(b, nc, sjs).dedupeBucket(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	k := streams.KVKey("communications-warehouse", "tw-SM00000000000000000000000000000001.message.status.delivered")
	if _, err := direct.kv.PutString(context.Background(), k, "delivered:1:1"); err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		d    *dedupe
	}{{"kv.Get", &dedupe{kv: direct.kv, requests: direct.requests}}, {"direct", direct}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			cpu0 := natstest.ProcessCPU(b)
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if ok, err := bc.d.isDelivered(context.Background(), k); err != nil || !ok {
						b.Error(ok, err)
						return
					}
				}
			})
			b.ReportMetric(float64(natstest.ProcessCPU(b)-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

package natsconn

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zen-twilio/zen/pkg/natstest"
)

// answer is what a Send's callback got.
type answer struct {
	m   *nats.Msg
	err error
}

// collect returns a callback that hands its answer to the returned channel,
// and fails the test if it is called twice.
func collect(t *testing.T) (func(*nats.Msg, error), chan answer) {
	ch := make(chan answer, 1)
	var once sync.Once
	return func(m *nats.Msg, err error) {
		called := false
		once.Do(func() { called = true; ch <- answer{m, err} })
		if !called {
			t.Error("a Send's callback was called twice")
		}
	}, ch
}

// answerOn subscribes handler to subject on a connection of its own, ready
// when it returns, unsubscribed at cleanup.
func answerOn(t *testing.T, srv *natstest.Server, subject string, handler nats.MsgHandler) {
	t.Helper()
	nc := srv.Conn(t)
	sub, err := nc.Subscribe(subject, handler)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

// startRequests is NewRequests(nc, timeout), stopped at cleanup.
func startRequests(tb testing.TB, nc *nats.Conn, timeout time.Duration) *Requests {
	tb.Helper()
	r, err := NewRequests(nc, timeout)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = r.Stop() })
	return r
}

// pendingOf is how many Sends still hold a slot and a place among the
// waiting requests.
func pendingOf(r *Requests) (slots, waiting int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.slots), len(r.waiting)
}

// Concurrent Sends each get their own ack, naming the message that Send
// stored, and each callback is called once.
func TestSendRoutesEachAckToItsPublish(t *testing.T) {
	t.Parallel()
	srv := natstest.Run(t)
	ctx := context.Background()
	stream, err := srv.JetStream(t).CreateStream(ctx, jetstream.StreamConfig{Name: "SEND", Subjects: []string{"send"}})
	if err != nil {
		t.Fatal(err)
	}
	r := startRequests(t, srv.Conn(t), 5*time.Second)

	const n = 500
	answers := make([]chan answer, n)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := g; i < n; i += 8 {
				fn, ch := collect(t)
				answers[i] = ch
				m := &nats.Msg{Subject: "send", Data: []byte("body " + strconv.Itoa(i))}
				if err := r.Send(m, fn); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	seen := map[uint64]bool{}
	for i, ch := range answers {
		a := <-ch
		if a.err != nil {
			t.Fatalf("send %d: %v", i, a.err)
		}
		if _, err := PubAck(a.m.Data); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		ack, err := parseAck(a.m.Data)
		if err != nil {
			t.Fatal(err)
		}
		if seen[ack.Sequence] {
			t.Fatalf("send %d got seq %d, which another send got too", i, ack.Sequence)
		}
		seen[ack.Sequence] = true
		got, err := stream.GetMsg(ctx, ack.Sequence)
		if err != nil {
			t.Fatal(err)
		}
		if want := "body " + strconv.Itoa(i); string(got.Data) != want {
			t.Fatalf("send %d: its ack names seq %d, which holds %q, not %q", i, ack.Sequence, got.Data, want)
		}
	}
	if slots, waiting := pendingOf(r); slots != 0 || waiting != 0 {
		t.Fatalf("after every reply: %d slots held, %d requests waiting", slots, waiting)
	}
}

// A Send's message leaves before whatever its caller publishes next: the
// forwarder's dedupe entry and attempt record precede the ack of the event.
func TestSendLeavesBeforeTheCallersNextWrite(t *testing.T) {
	t.Parallel()
	srv := natstest.Run(t)
	seen := make(chan string, 200)
	answerOn(t, srv, "order.>", func(m *nats.Msg) {
		if m.Subject == "order.record" {
			_ = m.Respond([]byte("ok"))
		}
		seen <- m.Subject + " " + string(m.Data)
	})
	nc := srv.Conn(t)
	r := startRequests(t, nc, 5*time.Second)
	const n = 100
	for i := range n {
		fn, _ := collect(t)
		if err := r.Send(&nats.Msg{Subject: "order.record", Data: []byte(strconv.Itoa(i))}, fn); err != nil {
			t.Fatal(err)
		}
		if err := nc.Publish("order.ack", []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		for _, want := range []string{"order.record " + strconv.Itoa(i), "order.ack " + strconv.Itoa(i)} {
			if got := <-seen; got != want {
				t.Fatalf("got %q, want %q: the Send's message did not precede the caller's next publish", got, want)
			}
		}
	}
}

// An unanswered Send gets nats.ErrTimeout, not before its timeout, and
// gives its slot back; the late reply goes nowhere.
func TestSendTimesOut(t *testing.T) {
	t.Parallel()
	srv := natstest.Run(t)
	held := make(chan *nats.Msg, 1)
	answerOn(t, srv, "slow", func(m *nats.Msg) { held <- m })
	r := startRequests(t, srv.Conn(t), 200*time.Millisecond)
	fn, ch := collect(t)
	start := time.Now()
	if err := r.Send(&nats.Msg{Subject: "slow", Data: []byte("x")}, fn); err != nil {
		t.Fatal(err)
	}
	a := <-ch
	if !errors.Is(a.err, nats.ErrTimeout) {
		t.Fatalf("got %v, want %v", a.err, nats.ErrTimeout)
	}
	if took := time.Since(start); took < 200*time.Millisecond {
		t.Fatalf("timed out after %s, before its 200ms", took)
	}
	if err := (<-held).Respond([]byte("late")); err != nil {
		t.Fatal(err)
	}
	if slots, waiting := pendingOf(r); slots != 0 || waiting != 0 {
		t.Fatalf("after the timeout: %d slots held, %d requests waiting", slots, waiting)
	}
}

// "No responders" (a stream without a leader for a moment) is sent again
// SendRetries times: a stream that appears meanwhile stores the message.
// With none, the callback gets nats.ErrNoResponders.
func TestSendRetriesNoResponders(t *testing.T) {
	t.Parallel()
	srv := natstest.Run(t)
	js := srv.JetStream(t)
	r := startRequests(t, srv.Conn(t), 5*time.Second)

	fn, ch := collect(t)
	start := time.Now()
	if err := r.Send(&nats.Msg{Subject: "nobody.here", Data: []byte("x")}, fn); err != nil {
		t.Fatal(err)
	}
	if a := <-ch; !errors.Is(a.err, nats.ErrNoResponders) {
		t.Fatalf("got %v, want %v", a.err, nats.ErrNoResponders)
	}
	if took := time.Since(start); took < SendRetries*SendRetryWait {
		t.Fatalf("gave up after %s, before its %d retries %s apart", took, SendRetries, SendRetryWait)
	}

	fn, ch = collect(t)
	if err := r.Send(&nats.Msg{Subject: "late.stream", Data: []byte("x")}, fn); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "LATE", Subjects: []string{"late.>"}}); err != nil {
		t.Fatal(err)
	}
	a := <-ch
	if a.err != nil {
		t.Fatalf("a stream created during the retries: %v", a.err)
	}
	if _, err := PubAck(a.m.Data); err != nil {
		t.Fatal(err)
	}
}

// At MaxPending unanswered Sends the next waits SendStallWait for a slot,
// then fails; nothing is sent for it.
func TestSendBoundsThePending(t *testing.T) {
	t.Parallel()
	srv := natstest.Run(t)
	answerOn(t, srv, "silent", func(*nats.Msg) {})
	// Long enough that none times out before the last is sent.
	r, err := NewRequests(srv.Conn(t), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for range MaxPending {
		if err := r.Send(&nats.Msg{Subject: "silent"}, func(*nats.Msg, error) {}); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	if err := r.Send(&nats.Msg{Subject: "silent"}, func(*nats.Msg, error) { t.Error("callback of a Send that failed") }); !errors.Is(err, ErrTooManyPending) {
		t.Fatalf("Send %d: got %v, want %v", MaxPending+1, err, ErrTooManyPending)
	}
	if took := time.Since(start); took < SendStallWait {
		t.Fatalf("failed after %s, before waiting %s for a slot", took, SendStallWait)
	}
	if _, waiting := pendingOf(r); waiting != MaxPending {
		t.Fatalf("%d requests waiting, want %d", waiting, MaxPending)
	}
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
}

// Stop lets the Sends in flight get their replies; one never answered ends
// with ErrStopped after the timeout; a Send after Stop fails at once.
func TestStopWaitsForSends(t *testing.T) {
	t.Parallel()
	srv := natstest.Run(t)
	answerOn(t, srv, "soon", func(m *nats.Msg) {
		time.AfterFunc(50*time.Millisecond, func() { _ = m.Respond([]byte("answer")) })
	})
	answerOn(t, srv, "never", func(*nats.Msg) {})
	r, err := NewRequests(srv.Conn(t), 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	soon, soonCh := collect(t)
	never, neverCh := collect(t)
	if err := r.Send(&nats.Msg{Subject: "soon"}, soon); err != nil {
		t.Fatal(err)
	}
	if err := r.Send(&nats.Msg{Subject: "never"}, never); err != nil {
		t.Fatal(err)
	}
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	select {
	case a := <-soonCh:
		if a.err != nil || string(a.m.Data) != "answer" {
			t.Errorf("a Send answered during Stop got %v, %v", a.m, a.err)
		}
	default:
		t.Error("Stop returned before the Send in flight got its reply")
	}
	select {
	case a := <-neverCh:
		if !errors.Is(a.err, ErrStopped) && !errors.Is(a.err, nats.ErrTimeout) {
			t.Errorf("an unanswered Send at Stop got %v, want %v or %v", a.err, ErrStopped, nats.ErrTimeout)
		}
	default:
		t.Error("Stop returned before the unanswered Send got its answer")
	}
	if err := r.Send(&nats.Msg{Subject: "soon"}, func(*nats.Msg, error) { t.Error("callback of a Send after Stop") }); !errors.Is(err, ErrStopped) {
		t.Errorf("Send after Stop: got %v, want %v", err, ErrStopped)
	}
}

// BenchmarkPublishAsync: batches of 16 publishes sent without waiting, then
// their acks awaited (the transformer's batch, the forwarder's records),
// through jetstream's PublishMsgAsync and through PublishAsync, in one run
// against a real stream; cpu-ns/op is the process's CPU (client and server)
// per publish.
func BenchmarkPublishAsync(b *testing.B) {
	srv := natstest.Run(b)
	if _, err := srv.JetStream(b).CreateStream(context.Background(), jetstream.StreamConfig{Name: "ASYNC", Subjects: []string{"async"}}); err != nil {
		b.Fatal(err)
	}
	nc := srv.Conn(b)
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	r := startRequests(b, nc, 5*time.Second)
	const batch = 16
	msg := func() *nats.Msg {
		return &nats.Msg{Subject: "async", Data: []byte(`{"event_id":"ZEN_EVENTS:1","outcome":"delivered"}`), Header: nats.Header{"Zen-Outcome": {"delivered"}}}
	}
	for _, bc := range []struct {
		name  string
		batch func() error
	}{
		{"jetstream.PublishMsgAsync", func() error {
			fs := make([]jetstream.PubAckFuture, batch)
			for i := range fs {
				f, err := js.PublishMsgAsync(msg())
				if err != nil {
					return err
				}
				fs[i] = f
			}
			for _, f := range fs {
				select {
				case <-f.Ok():
				case err := <-f.Err():
					return err
				}
			}
			return nil
		}},
		{"PublishAsync", func() error {
			acks := make(chan error, batch)
			for range batch {
				if err := r.PublishAsync(msg(), func(_ bool, err error) { acks <- err }); err != nil {
					return err
				}
			}
			for range batch {
				if err := <-acks; err != nil {
					return err
				}
			}
			return nil
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			cpu0 := natstest.ProcessCPU(b)
			defer func() { b.ReportMetric(float64(natstest.ProcessCPU(b)-cpu0)/float64(b.N*batch), "cpu-ns/op") }()
			b.SetParallelism(2)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := bc.batch(); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// A lost connection loses the replies awaited on it: their Sends fail with
// nats.ErrDisconnected at once, not after the timeout, and give their slots
// back; Sends after the reconnection get their replies.
func TestSendFailsWhenTheConnectionIsLost(t *testing.T) {
	t.Parallel()
	srv := natstest.Run(t)
	var answer sync.Map // the subjects answered
	answerOn(t, srv, "ask.*", func(m *nats.Msg) {
		if _, ok := answer.Load(m.Subject); ok {
			_ = m.Respond([]byte("answer"))
		}
	})
	r := startRequests(t, srv.Conn(t), time.Minute)
	fn, ch := collect(t)
	if err := r.Send(&nats.Msg{Subject: "ask.unanswered"}, fn); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	srv.Restart(t)
	select {
	case a := <-ch:
		if !errors.Is(a.err, nats.ErrDisconnected) {
			t.Fatalf("got %v, want %v", a.err, nats.ErrDisconnected)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a Send awaiting its reply when the connection was lost still waits")
	}
	t.Logf("failed %s after the restart began", time.Since(start).Round(time.Millisecond))
	if slots, waiting := pendingOf(r); slots != 0 || waiting != 0 {
		t.Fatalf("after the loss: %d slots held, %d requests waiting", slots, waiting)
	}

	answer.Store("ask.later", true)
	natstest.CheckFor(t, 30*time.Second, func() error {
		fn, ch := collect(t)
		if err := r.Send(&nats.Msg{Subject: "ask.later"}, fn); err != nil {
			return err
		}
		a := <-ch
		if a.err != nil {
			return a.err
		}
		if string(a.m.Data) != "answer" {
			return errors.New("wrong answer " + string(a.m.Data))
		}
		return nil
	})
}

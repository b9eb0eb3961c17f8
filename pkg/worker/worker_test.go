package worker_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap/zaptest"

	"github.com/zen-twilio/zen/pkg/natstest"
	"github.com/zen-twilio/zen/pkg/streams"
	"github.com/zen-twilio/zen/pkg/worker"
	"github.com/zen-twilio/zen/pkg/zen"
)

// env is a real JetStream server with the pipeline's streams, a consumer on
// TWILIO_RAW and a helper to run a worker over it.
type env struct {
	t   *testing.T
	srv *natstest.Server
	js  jetstream.JetStream
	ctx context.Context
}

func newEnv(t *testing.T) *env {
	t.Helper()
	srv := natstest.Run(t)
	js := srv.JetStream(t)
	natstest.ApplyStreams(t, js, streams.DefaultConfig())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return &env{t: t, srv: srv, js: js, ctx: ctx}
}

func (e *env) consumer(maxDeliver int) func(context.Context) (jetstream.Consumer, error) {
	return e.consumerOn(e.js, maxDeliver)
}

// consumerOn is consumer read through js (its connection receives the
// messages and sends the acks).
func (e *env) consumerOn(js jetstream.JetStream, maxDeliver int) func(context.Context) (jetstream.Consumer, error) {
	return func(ctx context.Context) (jetstream.Consumer, error) {
		return js.CreateOrUpdateConsumer(ctx, streams.StreamRaw, jetstream.ConsumerConfig{
			Durable: "test", AckPolicy: jetstream.AckExplicitPolicy, AckWait: 3 * time.Second,
			MaxDeliver: maxDeliver, FilterSubject: "twilio.raw.>",
		})
	}
}

func (e *env) publish(n int) {
	e.t.Helper()
	for i := 0; i < n; i++ {
		m := nats.NewMsg(streams.RawSubject("message-status"))
		m.Data = []byte(fmt.Sprintf("MessageSid=SM%d", i))
		m.Header.Set(zen.HeaderMsgID, fmt.Sprintf("id-%d", i))
		m.Header.Set(zen.HeaderRequestID, fmt.Sprintf("req-%d", i))
		if _, err := e.js.PublishMsg(e.ctx, m); err != nil {
			e.t.Fatal(err)
		}
	}
}

// run starts a worker and returns a stop function that cancels it and waits.
func (e *env) run(cfg worker.Config) (stop func()) {
	e.t.Helper()
	cfg.Stage = "test"
	if cfg.Consumer == nil {
		cfg.Consumer = e.consumer(cfg.MaxDeliver)
	}
	if _, err := cfg.Consumer(e.ctx); err != nil {
		e.t.Fatal(err)
	}
	cfg.Publisher = e.js
	cfg.DLQSubject = func(r string) string { return streams.DLQSubject("test", r) }
	cfg.Logger = zaptest.NewLogger(e.t)
	w, err := worker.New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				e.t.Errorf("Run = %v", err)
			}
		})
	}
	e.t.Cleanup(stop)
	return stop
}

func (e *env) pending() (ackPending int, numPending uint64) {
	info, err := mustConsumer(e).Info(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	return info.NumAckPending, info.NumPending
}

func mustConsumer(e *env) jetstream.Consumer {
	c, err := e.js.Consumer(e.ctx, streams.StreamRaw, "test")
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

func (e *env) dlq() []jetstream.RawStreamMsg {
	s, err := e.js.Stream(e.ctx, streams.StreamDLQ)
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := s.Info(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(e.ctx, seq)
		if err != nil {
			e.t.Fatal(err)
		}
		out = append(out, *m)
	}
	return out
}

func TestAckedMessagesLeaveNothingPending(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.publish(50)
	var handled atomic.Int64
	e.run(worker.Config{MaxDeliver: 3, Handler: func(context.Context, jetstream.Msg) worker.Outcome {
		handled.Add(1)
		return worker.Ack()
	}})
	natstest.CheckFor(t, 10*time.Second, func() error {
		if ap, np := e.pending(); ap != 0 || np != 0 || handled.Load() < 50 {
			return fmt.Errorf("handled %d, ack pending %d, pending %d", handled.Load(), ap, np)
		}
		return nil
	})
	if got := handled.Load(); got != 50 {
		t.Errorf("handled %d messages, want 50 (each once)", got)
	}
}

func TestRetryFollowsTheScheduleFromDeliveryCount(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.publish(1)
	var mu sync.Mutex
	var times []time.Time
	var deliveries []uint64
	e.run(worker.Config{MaxDeliver: 5, Backoff: worker.Backoff{Initial: 200 * time.Millisecond, Multiplier: 2, Max: time.Second},
		Handler: func(_ context.Context, m jetstream.Msg) worker.Outcome {
			meta, _ := m.Metadata()
			mu.Lock()
			defer mu.Unlock()
			times = append(times, time.Now())
			deliveries = append(deliveries, meta.NumDelivered)
			if len(times) < 3 {
				return worker.Retry(0, "http_503", errors.New("503"))
			}
			return worker.Ack()
		}})
	natstest.CheckFor(t, 10*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if ap, np := e.pending(); len(times) < 3 || ap != 0 || np != 0 {
			return fmt.Errorf("%d deliveries so far", len(times))
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	if got, want := fmt.Sprint(deliveries), "[1 2 3]"; got != want {
		t.Errorf("NumDelivered sequence = %s, want %s", got, want)
	}
	// Lower bounds only: a loaded machine may be late, never early.
	for i, want := range []time.Duration{200 * time.Millisecond, 400 * time.Millisecond} {
		if got := times[i+1].Sub(times[i]); got < want {
			t.Errorf("delay before delivery %d = %v, want >= %v", i+2, got, want)
		}
	}
	if n := len(e.dlq()); n != 0 {
		t.Errorf("DLQ has %d messages, want 0", n)
	}
}

func TestExplicitRetryAfterWins(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.publish(1)
	var mu sync.Mutex
	var times []time.Time
	e.run(worker.Config{MaxDeliver: 5, Backoff: worker.Backoff{Initial: 10 * time.Millisecond, Multiplier: 1},
		Handler: func(context.Context, jetstream.Msg) worker.Outcome {
			mu.Lock()
			defer mu.Unlock()
			times = append(times, time.Now())
			if len(times) == 1 {
				return worker.Retry(700*time.Millisecond, "http_429", errors.New("429"))
			}
			return worker.Ack()
		}})
	natstest.CheckFor(t, 10*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(times) < 2 {
			return errors.New("not redelivered yet")
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	if got := times[1].Sub(times[0]); got < 700*time.Millisecond {
		t.Errorf("redelivered after %v, want >= 700ms (the explicit delay)", got)
	}
}

func TestLastDeliveryIsDeadLetteredWithEvidence(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.publish(1)
	var calls atomic.Int64
	e.run(worker.Config{MaxDeliver: 3, Backoff: worker.Backoff{Initial: 10 * time.Millisecond, Multiplier: 1},
		Handler: func(context.Context, jetstream.Msg) worker.Outcome {
			calls.Add(1)
			return worker.Retry(0, "http_503", errors.New("target said 503"))
		}})
	natstest.CheckFor(t, 10*time.Second, func() error {
		if n := len(e.dlq()); n != 1 {
			return fmt.Errorf("DLQ has %d messages", n)
		}
		return nil
	})
	dl := e.dlq()[0]
	for k, want := range map[string]string{
		zen.HeaderStage: "test", zen.HeaderReason: "http_503", zen.HeaderDeliveries: "3",
		zen.HeaderOrigStream: "TWILIO_RAW", zen.HeaderOrigSubj: "twilio.raw.message-status", zen.HeaderOrigSeq: "1",
		zen.HeaderRequestID: "req-0", worker.HeaderOriginalMsgID: "id-0",
	} {
		if got := dl.Header.Get(k); got != want {
			t.Errorf("dead letter header %s = %q, want %q", k, got, want)
		}
	}
	if got, want := dl.Subject, "zen.dlq.test.http_503"; got != want {
		t.Errorf("dead letter subject = %q, want %q", got, want)
	}
	if got, want := string(dl.Data), "MessageSid=SM0"; got != want {
		t.Errorf("dead letter body = %q, want the original %q", got, want)
	}
	if got := dl.Header.Get(zen.HeaderError); got == "" {
		t.Error("dead letter has no Zen-Error")
	}
	// Terminated: no fourth delivery, nothing pending.
	natstest.CheckFor(t, 5*time.Second, func() error {
		if ap, np := e.pending(); ap != 0 || np != 0 {
			return fmt.Errorf("ack pending %d, pending %d", ap, np)
		}
		return nil
	})
	if got := calls.Load(); got != 3 {
		t.Errorf("handler called %d times, want 3 (MaxDeliver)", got)
	}
}

func TestPanicIsRetriedNotLost(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.publish(1)
	var calls atomic.Int64
	e.run(worker.Config{MaxDeliver: 5, Backoff: worker.Backoff{Initial: 10 * time.Millisecond, Multiplier: 1},
		Handler: func(context.Context, jetstream.Msg) worker.Outcome {
			if calls.Add(1) == 1 {
				panic("boom")
			}
			return worker.Ack()
		}})
	natstest.CheckFor(t, 10*time.Second, func() error {
		if ap, np := e.pending(); calls.Load() < 2 || ap != 0 || np != 0 {
			return fmt.Errorf("calls %d", calls.Load())
		}
		return nil
	})
}

func TestDeadLetterNotTerminatedWhenDLQUnavailable(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if err := e.js.DeleteStream(e.ctx, streams.StreamDLQ); err != nil {
		t.Fatal(err)
	}
	e.publish(1)
	var calls atomic.Int64
	e.run(worker.Config{MaxDeliver: 10, Backoff: worker.Backoff{Initial: 50 * time.Millisecond, Multiplier: 1},
		Handler: func(context.Context, jetstream.Msg) worker.Outcome {
			calls.Add(1)
			return worker.DeadLetter("bad_input", errors.New("never valid"))
		}})
	// The dead letter cannot be stored, so the message must come back.
	natstest.CheckFor(t, 20*time.Second, func() error {
		if calls.Load() < 2 {
			return fmt.Errorf("calls %d", calls.Load())
		}
		return nil
	})
	// Once the DLQ exists again, it is stored and then terminated.
	natstest.ApplyStreams(t, e.js, streams.DefaultConfig())
	natstest.CheckFor(t, 20*time.Second, func() error {
		if n := len(e.dlq()); n != 1 {
			return fmt.Errorf("DLQ has %d", n)
		}
		if ap, np := e.pending(); ap != 0 || np != 0 {
			return fmt.Errorf("ack pending %d, pending %d", ap, np)
		}
		return nil
	})
}

func TestStopFinishesInFlightWork(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.publish(4)
	started := make(chan struct{}, 4)
	release := make(chan struct{})
	var acked atomic.Int64
	stop := e.run(worker.Config{MaxDeliver: 3, Concurrency: 4, Handler: func(context.Context, jetstream.Msg) worker.Outcome {
		started <- struct{}{}
		<-release
		acked.Add(1)
		return worker.Ack()
	}})
	for i := 0; i < 4; i++ {
		<-started
	}
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	select {
	case <-stopped:
		t.Fatal("Run returned while handlers were still running")
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	<-stopped
	if got := acked.Load(); got != 4 {
		t.Errorf("finished %d in-flight messages, want 4", got)
	}
	if ap, np := e.pending(); ap != 0 || np != 0 {
		t.Errorf("after stop: ack pending %d, pending %d; want all acked", ap, np)
	}
}

func TestConcurrencyIsBounded(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.publish(40)
	var cur, peak, done atomic.Int64
	e.run(worker.Config{MaxDeliver: 3, Concurrency: 3, Handler: func(context.Context, jetstream.Msg) worker.Outcome {
		n := cur.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(5 * time.Millisecond)
		cur.Add(-1)
		done.Add(1)
		return worker.Ack()
	}})
	natstest.CheckFor(t, 20*time.Second, func() error {
		if done.Load() < 40 {
			return fmt.Errorf("done %d", done.Load())
		}
		return nil
	})
	// At most Concurrency at once, and that many are used: the handlers'
	// goroutines are pooled, not taken one at a time.
	if p := peak.Load(); p != 3 {
		t.Errorf("peak concurrency %d, want 3 (Concurrency)", p)
	}
}

func TestBackoffDelay(t *testing.T) {
	t.Parallel()
	b := worker.Backoff{Initial: time.Second, Multiplier: 2, Max: 10 * time.Second}
	for n, want := range map[uint64]time.Duration{0: time.Second, 1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 4: 8 * time.Second, 5: 10 * time.Second, 500: 10 * time.Second} {
		if got := b.Delay(n); got != want {
			t.Errorf("Delay(%d) = %v, want %v", n, got, want)
		}
	}
}

func TestLinearBackoffDelay(t *testing.T) {
	t.Parallel()
	b := worker.Backoff{Initial: 2 * time.Second, Max: 7 * time.Second, Linear: true}
	for n, want := range map[uint64]time.Duration{1: 2 * time.Second, 2: 4 * time.Second, 3: 6 * time.Second, 4: 7 * time.Second, 500: 7 * time.Second} {
		if got := b.Delay(n); got != want {
			t.Errorf("Delay(%d) = %v, want %v", n, got, want)
		}
	}
}

func TestNewRejectsMissingDependencies(t *testing.T) {
	t.Parallel()
	_, err := worker.New(worker.Config{})
	if err == nil {
		t.Fatal("New(empty) = nil error")
	}
	for _, want := range []string{"Stage", "Consumer", "Publisher", "Handler", "DLQSubject", "MaxDeliver"} {
		if !contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// TestUnackedLastDeliveryIsDeadLettered plays a worker that crashes on every
// delivery (fetches, never acks): once MaxDeliver is spent, the watcher of a
// healthy replica stores the message as a dead letter.
func TestUnackedLastDeliveryIsDeadLettered(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cons, err := e.js.CreateOrUpdateConsumer(e.ctx, streams.StreamRaw, jetstream.ConsumerConfig{
		Durable: "crashy", AckPolicy: jetstream.AckExplicitPolicy, AckWait: 300 * time.Millisecond,
		MaxDeliver: 2, FilterSubject: "twilio.raw.>",
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	go func() {
		_ = worker.WatchMaxDeliveries(ctx, e.js, streams.StreamRaw, "crashy", "test",
			func(r string) string { return streams.DLQSubject("test", r) }, zaptest.NewLogger(t))
	}()
	time.Sleep(50 * time.Millisecond) // let the advisory subscription register
	e.publish(1)
	for i := 0; i < 2; i++ {
		b, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for range b.Messages() {
			// crash: no ack
		}
	}
	// The server notices the exhausted message when the next pull asks for
	// work, as the healthy replicas' pulls always do.
	natstest.CheckFor(t, 10*time.Second, func() error {
		if b, err := cons.Fetch(1, jetstream.FetchMaxWait(200*time.Millisecond)); err == nil {
			for range b.Messages() {
				t.Error("a third delivery happened despite MaxDeliver 2")
			}
		}
		if n := len(e.dlq()); n != 1 {
			return fmt.Errorf("DLQ has %d messages", n)
		}
		return nil
	})
	dl := e.dlq()[0]
	if got, want := dl.Header.Get(zen.HeaderReason), worker.ReasonUnacked; got != want {
		t.Errorf("reason = %q, want %q", got, want)
	}
	if got, want := string(dl.Data), "MessageSid=SM0"; got != want {
		t.Errorf("body = %q, want %q", got, want)
	}
}

// A handler slower than AckWait keeps its message: the worker's heartbeat
// (InProgress every third of AckWait) stops JetStream from redelivering it,
// and the handler sees the metadata the worker parsed.
func TestSlowHandlerIsNotRedelivered(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.publish(1)
	consumer := func(ctx context.Context) (jetstream.Consumer, error) {
		return e.js.CreateOrUpdateConsumer(ctx, streams.StreamRaw, jetstream.ConsumerConfig{
			Durable: "test", AckPolicy: jetstream.AckExplicitPolicy, AckWait: time.Second,
			MaxDeliver: 5, FilterSubject: "twilio.raw.>",
		})
	}
	var calls atomic.Int64
	var deliveries atomic.Uint64
	e.run(worker.Config{MaxDeliver: 5, AckWait: time.Second, Consumer: consumer, Handler: func(ctx context.Context, m jetstream.Msg) worker.Outcome {
		calls.Add(1)
		meta, err := worker.Metadata(ctx, m)
		if err != nil {
			t.Error(err)
			return worker.Ack()
		}
		deliveries.Store(meta.NumDelivered)
		time.Sleep(2500 * time.Millisecond) // 2.5 × AckWait
		return worker.Ack()
	}})
	natstest.CheckFor(t, 15*time.Second, func() error {
		if ap, np := e.pending(); ap != 0 || np != 0 || calls.Load() == 0 {
			return fmt.Errorf("calls %d, ack pending %d, pending %d", calls.Load(), ap, np)
		}
		return nil
	})
	time.Sleep(1500 * time.Millisecond) // a redelivery would have come by now
	if got := calls.Load(); got != 1 {
		t.Errorf("handler called %d times, want 1 (the heartbeat should hold the message)", got)
	}
	if got := deliveries.Load(); got != 1 {
		t.Errorf("metadata NumDelivered = %d, want 1", got)
	}
}

// A batch handler's outcomes are carried out message by message: acks,
// retries on the schedule and dead letters in one batch; batches stay within
// MaxBatch and Concurrency; every message is handled, none twice after its
// ack.
func TestBatchOutcomesAreCarriedOutPerMessage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.publish(60)
	var mu sync.Mutex
	calls := map[string]int{}
	var biggest, cur, peak atomic.Int64
	e.run(worker.Config{MaxDeliver: 3, Concurrency: 8, MaxBatch: 5, Backoff: worker.Backoff{Initial: 10 * time.Millisecond, Multiplier: 1},
		BatchHandler: func(ctx context.Context, msgs []jetstream.Msg) []worker.Outcome {
			n := cur.Add(int64(len(msgs)))
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			for b := biggest.Load(); int64(len(msgs)) > b && !biggest.CompareAndSwap(b, int64(len(msgs))); b = biggest.Load() {
			}
			time.Sleep(2 * time.Millisecond) // let the next batch gather
			outs := make([]worker.Outcome, len(msgs))
			mu.Lock()
			for i, m := range msgs {
				body := string(m.Data())
				calls[body]++
				meta, err := worker.Metadata(ctx, m)
				if err != nil {
					t.Error(err)
				}
				var seq int
				fmt.Sscanf(body, "MessageSid=SM%d", &seq)
				switch {
				case seq%10 == 3:
					outs[i] = worker.DeadLetter("poison", errors.New("never valid"))
				case seq%10 == 7 && meta.NumDelivered == 1:
					outs[i] = worker.Retry(0, "http_503", errors.New("try again"))
				default:
					outs[i] = worker.Ack()
				}
			}
			mu.Unlock()
			cur.Add(-int64(len(msgs)))
			return outs
		}})
	natstest.CheckFor(t, 20*time.Second, func() error {
		if ap, np := e.pending(); ap != 0 || np != 0 || len(e.dlq()) < 6 {
			return fmt.Errorf("ack pending %d, pending %d, dead letters %d", ap, np, len(e.dlq()))
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	for i := range 60 {
		want := 1
		if i%10 == 7 {
			want = 2 // retried once, then acked
		}
		if got := calls[fmt.Sprintf("MessageSid=SM%d", i)]; got != want {
			t.Errorf("SM%d handled %d times, want %d", i, got, want)
		}
	}
	if n := len(e.dlq()); n != 6 {
		t.Errorf("%d dead letters, want 6", n)
	}
	if b := biggest.Load(); b > 5 || b < 2 {
		t.Errorf("largest batch %d, want 2..5 (60 messages waiting, MaxBatch 5)", b)
	}
	if p := peak.Load(); p > 8 {
		t.Errorf("%d messages in flight at once, want <= 8 (Concurrency)", p)
	}
}

// A batch handler that panics, or answers for the wrong number of messages,
// has its whole batch retried: nothing is acked that was not handled.
func TestBatchPanicAndWrongAnswerAreRetried(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.publish(10)
	var calls atomic.Int64
	var acked sync.Map
	e.run(worker.Config{MaxDeliver: 5, Backoff: worker.Backoff{Initial: 10 * time.Millisecond, Multiplier: 1},
		BatchHandler: func(ctx context.Context, msgs []jetstream.Msg) []worker.Outcome {
			switch calls.Add(1) {
			case 1:
				panic("boom")
			case 2:
				return nil
			}
			outs := make([]worker.Outcome, len(msgs))
			for i, m := range msgs {
				acked.Store(string(m.Data()), true)
				outs[i] = worker.Ack()
			}
			return outs
		}})
	natstest.CheckFor(t, 20*time.Second, func() error {
		n := 0
		acked.Range(func(any, any) bool { n++; return true })
		if ap, np := e.pending(); ap != 0 || np != 0 || n != 10 {
			return fmt.Errorf("ack pending %d, pending %d, acked %d of 10", ap, np, n)
		}
		return nil
	})
	if n := len(e.dlq()); n != 0 {
		t.Errorf("%d dead letters, want 0", n)
	}
}

// Stopping a batch worker finishes the batches in flight and acks them
// before Run returns.
func TestStopFinishesInFlightBatches(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.publish(8)
	started := make(chan int, 8)
	release := make(chan struct{})
	var acked atomic.Int64
	stop := e.run(worker.Config{MaxDeliver: 3, Concurrency: 8, MaxBatch: 4, BatchHandler: func(_ context.Context, msgs []jetstream.Msg) []worker.Outcome {
		started <- len(msgs)
		<-release
		acked.Add(int64(len(msgs)))
		outs := make([]worker.Outcome, len(msgs))
		for i := range outs {
			outs[i] = worker.Ack()
		}
		return outs
	}})
	for n := 0; n < 8; {
		n += <-started
	}
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	select {
	case <-stopped:
		t.Fatal("Run returned while batches were still running")
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	<-stopped
	if got := acked.Load(); got != 8 {
		t.Errorf("finished %d in-flight messages, want 8", got)
	}
	if ap, np := e.pending(); ap != 0 || np != 0 {
		t.Errorf("after stop: ack pending %d, pending %d; want all acked", ap, np)
	}
}

// AckAfter's publish reaches the server before the message's ack (the
// forwarder's dedupe entry must be stored before its event is acked): a
// subscriber to both sees each message's record first, then its ack.
func TestAckAfterPublishesBeforeTheAck(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	nc := e.js.Conn()
	watch := make(chan *nats.Msg, 1000)
	for _, subj := range []string{"before.>", "$JS.ACK." + streams.StreamRaw + ".test.>"} {
		sub, err := nc.ChanSubscribe(subj, watch)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sub.Unsubscribe() })
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	const n = 50
	e.publish(n)
	e.run(worker.Config{MaxDeliver: 3, Handler: func(_ context.Context, m jetstream.Msg) worker.Outcome {
		meta, err := m.Metadata()
		if err != nil {
			return worker.Retry(0, "meta", err)
		}
		seq := meta.Sequence.Stream
		return worker.AckAfter(func() {
			if err := nc.Publish(fmt.Sprintf("before.%d", seq), nil); err != nil {
				t.Error(err)
			}
		})
	}})
	recorded := map[uint64]bool{}
	acked := 0
	timeout := time.After(20 * time.Second)
	for acked < n {
		select {
		case m := <-watch:
			if seq, ok := strings.CutPrefix(m.Subject, "before."); ok {
				var s uint64
				fmt.Sscan(seq, &s)
				recorded[s] = true
				continue
			}
			// $JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.…
			tok := strings.Split(m.Subject, ".")
			var s uint64
			fmt.Sscan(tok[5], &s)
			if !recorded[s] {
				t.Fatalf("message %d was acked before its record was published", s)
			}
			acked++
		case <-timeout:
			t.Fatalf("%d of %d acks seen", acked, n)
		}
	}
}

// A BeforeAck that panics leaves its message unacked: it is redelivered,
// not lost, and the worker goes on.
func TestAckAfterPanicIsRedelivered(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.publish(1)
	var calls atomic.Int64
	e.run(worker.Config{MaxDeliver: 5, Handler: func(context.Context, jetstream.Msg) worker.Outcome {
		if calls.Add(1) == 1 {
			return worker.AckAfter(func() { panic("boom") })
		}
		return worker.Ack()
	}})
	natstest.CheckFor(t, 15*time.Second, func() error {
		if ap, np := e.pending(); calls.Load() < 2 || ap != 0 || np != 0 {
			return fmt.Errorf("calls %d, ack pending %d, pending %d", calls.Load(), ap, np)
		}
		return nil
	})
}

// The acks of handlers done at the same moment leave in a few writes, not
// one each: what the worker's acking goroutine is for. One CPU, as in
// production (the manifests' limit of 1).
func TestAcksOfHandlersDoneTogetherShareWrites(t *testing.T) {
	// Not parallel: it sets GOMAXPROCS for the process.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	e := newEnv(t)
	const n = 64
	e.publish(n)
	d := &natstest.WriteCounter{}
	wjs, err := jetstream.New(e.srv.Conn(t, nats.SetCustomDialer(d)))
	if err != nil {
		t.Fatal(err)
	}
	var waiting sync.WaitGroup
	waiting.Add(n)
	release := make(chan struct{})
	e.run(worker.Config{MaxDeliver: 3, Concurrency: n, Consumer: e.consumerOn(wjs, 3),
		Handler: func(context.Context, jetstream.Msg) worker.Outcome {
			waiting.Done()
			<-release
			return worker.Ack()
		}})
	waiting.Wait()
	w0 := d.Writes()
	close(release)
	natstest.CheckFor(t, 10*time.Second, func() error {
		if ap, np := e.pending(); ap != 0 || np != 0 {
			return fmt.Errorf("ack pending %d, pending %d", ap, np)
		}
		return nil
	})
	writes := d.Writes() - w0
	t.Logf("%d acks in %d writes", n, writes)
	if writes*4 > n {
		t.Fatalf("%d acks took %d writes: fewer than 4 acks per write", n, writes)
	}
}

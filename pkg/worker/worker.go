package worker

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/zen-twilio/zen/pkg/zen"
)

// Publisher is the one JetStream call the worker makes besides acking: it
// publishes dead letters and waits for their acknowledgement.
type Publisher interface {
	PublishMsg(ctx context.Context, m *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error)
}

var _ Publisher = (jetstream.JetStream)(nil)

// Config configures a Worker. Consumer, Publisher and Handler are required.
type Config struct {
	// Stage names the worker in dead letters and metrics ("transformer").
	Stage string
	// Consumer returns the durable consumer to read; it is called again after
	// the consumer or the connection was lost, so it should create or update
	// the consumer (idempotent).
	Consumer func(ctx context.Context) (jetstream.Consumer, error)
	// Publisher publishes dead letters (a jetstream.JetStream).
	Publisher Publisher
	// Handler decides each message's outcome.
	Handler Handler
	// BatchHandler, when set, replaces Handler: it decides the outcomes of
	// messages that arrived together, one per message and in order, so a
	// stage can publish for all of them in one write and acknowledge them in
	// one more. A batch is what the consumer had delivered when the previous
	// one was taken (after waiting Linger), at most MaxBatch messages; a
	// pipeline under load gets larger batches and spends less per message.
	BatchHandler BatchHandler
	// MaxBatch bounds a batch (default 16).
	MaxBatch int
	// Linger is how long a batch waits for more messages after its first
	// (default 0: a batch takes what is already there).
	Linger time.Duration
	// DLQSubject returns the dead-letter subject for a reason code.
	DLQSubject func(reason string) string
	// Concurrency bounds handlers running at once (default 16). The client
	// buffers as many messages as it runs, so the ack timer of a buffered
	// message never runs long before its handler starts.
	Concurrency int
	// MaxDeliver is the consumer's MaxDeliver: a Retry on that delivery is
	// dead-lettered instead.
	MaxDeliver int
	// Backoff schedules Retry outcomes that give no delay.
	Backoff Backoff
	// AckWait is the consumer's AckWait; handlers still running after a third
	// of it send InProgress so the message is not redelivered meanwhile.
	AckWait time.Duration
	// HandleTimeout bounds one handler call (default: no bound beyond ctx).
	HandleTimeout time.Duration
	// Logger; nil means no logs.
	Logger *zap.Logger
	// Registerer receives the worker's metrics; nil means none.
	Registerer prometheus.Registerer
	// RetryReasons and DeadLetterReasons are the reasons the handler may
	// return with Retry and DeadLetter. Their zen_worker_messages_total
	// series start at 0 (a retry reason under dead_letter too: the last
	// delivery dead-letters it), so a panel shows 0, not "No data".
	RetryReasons, DeadLetterReasons []string
}

func (c *Config) setDefaults() {
	if c.Concurrency <= 0 {
		c.Concurrency = 16
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = 16
	}
	if c.Backoff == (Backoff{}) {
		c.Backoff = DefaultBackoff()
	}
	if c.AckWait <= 0 {
		c.AckWait = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
}

// Validate reports every missing dependency.
func (c *Config) Validate() error {
	var errs []error
	if c.Stage == "" {
		errs = append(errs, errors.New("worker: Stage is required"))
	}
	if c.Consumer == nil {
		errs = append(errs, errors.New("worker: Consumer is required"))
	}
	if c.Publisher == nil {
		errs = append(errs, errors.New("worker: Publisher is required"))
	}
	if c.Handler == nil && c.BatchHandler == nil {
		errs = append(errs, errors.New("worker: Handler or BatchHandler is required"))
	}
	if c.DLQSubject == nil {
		errs = append(errs, errors.New("worker: DLQSubject is required"))
	}
	if c.MaxDeliver < 1 {
		errs = append(errs, fmt.Errorf("worker: MaxDeliver must be >= 1, got %d", c.MaxDeliver))
	}
	return errors.Join(errs...)
}

// Worker consumes one durable consumer with bounded concurrency and carries
// out the handlers' outcomes. Create with New; Run once.
type Worker struct {
	cfg       Config
	metrics   *metrics
	watchOnce sync.Once
	acks      *acks // while Run runs
}

// startWatcher runs WatchMaxDeliveries for the consumer when the Publisher
// can read streams (a jetstream.JetStream).
func (w *Worker) startWatcher(ctx context.Context, cons jetstream.Consumer, wg *sync.WaitGroup) {
	js, ok := w.cfg.Publisher.(streamReader)
	if !ok {
		return
	}
	info := cons.CachedInfo()
	if info == nil {
		return
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := WatchMaxDeliveries(ctx, js, info.Stream, info.Name, w.cfg.Stage, w.cfg.DLQSubject, w.cfg.Logger); err != nil {
			w.cfg.Logger.Warn("max deliveries watcher", zap.Error(err))
		}
	}()
}

// New checks cfg and returns a Worker.
func New(cfg Config) (*Worker, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registerer, cfg.Stage, cfg.RetryReasons, cfg.DeadLetterReasons)
	if err != nil {
		return nil, err
	}
	return &Worker{cfg: cfg, metrics: m}, nil
}

// Run consumes until ctx is done, then stops pulling, finishes the messages
// already delivered to it (in flight and buffered), and returns. It survives
// lost connections and deleted consumers by asking Config.Consumer again. It
// returns nil after a clean stop.
func (w *Worker) Run(ctx context.Context) error {
	sem := make(chan struct{}, w.cfg.Concurrency)
	var wg sync.WaitGroup
	defer wg.Wait()
	// Stopped after the handlers (deferred calls run last first): every
	// ack a handler's outcome asked for is sent.
	w.acks = newAcks(w.cfg.Concurrency, w.metrics.acked)
	defer w.acks.stop()
	handlers := newPool(w.cfg.Concurrency)
	defer handlers.close()
	// Handlers get a context that outlives ctx: on shutdown, in-flight work
	// finishes (bounded by HandleTimeout) rather than being cut mid-publish.
	hctx := context.WithoutCancel(ctx)
	retry := time.Duration(0)
	for {
		if ctx.Err() != nil {
			return nil
		}
		if retry > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(retry):
			}
		}
		retry = min(max(2*retry, 250*time.Millisecond), 5*time.Second)

		cons, err := w.cfg.Consumer(ctx)
		if err != nil {
			w.cfg.Logger.Warn("consumer unavailable, retrying", zap.Error(err), zap.Duration("in", retry))
			continue
		}
		w.watchOnce.Do(func() { w.startWatcher(ctx, cons, &wg) })
		// Idle heartbeats every 2s (the client's default is 5s): a pull the
		// server no longer holds (lost in a reconnect, or under heavy load)
		// is noticed after two missed heartbeats and asked again, so the
		// consumer stalls for seconds, not tens of seconds.
		it, err := cons.Messages(jetstream.PullMaxMessages(w.cfg.Concurrency), jetstream.PullHeartbeat(2*time.Second))
		if err != nil {
			w.cfg.Logger.Warn("consume: open iterator", zap.Error(err))
			continue
		}
		stop := context.AfterFunc(ctx, it.Drain)
		if w.cfg.BatchHandler != nil {
			if w.consumeBatches(hctx, it, sem, handlers, &wg) {
				retry = 0
			}
			stop()
			it.Stop()
			continue
		}
		for {
			m, ok := w.next(it)
			if !ok {
				break
			}
			retry = 0
			sem <- struct{}{}
			wg.Add(1)
			handlers.run(func() {
				defer func() { <-sem; wg.Done() }()
				w.process(hctx, m)
			})
		}
		stop()
		it.Stop()
	}
}

// acks sends the worker's acks, those of the handlers done at the same
// moment in one write, as natsconn.Requests does for requests: a handler's
// own Ack would wake nats.go's flusher, which the Go scheduler runs before
// the other handlers already runnable, so every ack (and the forwarder's
// records before it) left in a write of its own, and the server read each
// alone. One goroutine sends them instead, after yielding once
// (runtime.Gosched) so the handlers runnable at that moment queue theirs.
//
// A plain ack, not DoubleAck: an ack that is lost means the message is
// redelivered, and the handlers are idempotent (the events' Nats-Msg-Id,
// the forwarder's dedupe bucket), so it costs a repeat only, while waiting
// for a confirmation costs a round trip on every message (see
// bench/results.md).
type acks struct {
	queue   chan ack
	stopped chan struct{}
	acked   prometheus.Counter
}

type ack struct {
	m      jetstream.Msg
	before func()
	log    *zap.Logger
}

func newAcks(n int, acked prometheus.Counter) *acks {
	a := &acks{queue: make(chan ack, n), stopped: make(chan struct{}), acked: acked}
	go a.run()
	return a
}

// send queues m's ack, after before (nil: none).
func (a *acks) send(m jetstream.Msg, before func(), log *zap.Logger) {
	a.queue <- ack{m: m, before: before, log: log}
}

func (a *acks) run() {
	defer close(a.stopped)
	group := make([]ack, 0, 64)
	for first := range a.queue {
		runtime.Gosched() // the handlers runnable now queue theirs too
		group = append(group[:0], first)
	more:
		for len(group) < cap(group) {
			select {
			case next, ok := <-a.queue:
				if !ok {
					break more
				}
				group = append(group, next)
			default:
				break more
			}
		}
		for _, x := range group {
			a.one(x)
		}
		clear(group) // no message kept alive until the next group
	}
}

// one runs x.before and acks x.m. A before that panics leaves the message
// unacked: it is redelivered.
func (a *acks) one(x ack) {
	defer func() {
		if r := recover(); r != nil {
			x.log.Error("before ack: panic; not acked", zap.Any("panic", r), zap.Stack("stack"))
		}
	}()
	if x.before != nil {
		x.before()
	}
	if err := x.m.Ack(); err != nil {
		x.log.Warn("ack not sent", zap.Error(err))
	}
	a.acked.Inc()
}

// stop sends the acks queued and returns; call it once no handler runs.
func (a *acks) stop() {
	close(a.queue)
	<-a.stopped
}

// pool runs handlers on at most n long-lived goroutines. A goroutine per
// message would start with a small stack and grow it again on every deep
// call (HTTP, JSON): 5% of the forwarder's CPU in `make bench` profiles. A
// pooled goroutine keeps the stack it grew.
type pool struct {
	work chan func()
	wg   sync.WaitGroup
}

func newPool(n int) *pool {
	p := &pool{work: make(chan func())}
	p.wg.Add(n)
	for range n {
		go func() {
			defer p.wg.Done()
			for f := range p.work {
				f()
			}
		}()
	}
	return p
}

// run runs f on the first free goroutine, waiting for one. Callers bound
// what they hand over (the worker's semaphore), so the wait is short.
func (p *pool) run(f func()) { p.work <- f }

// close waits for the functions handed over to return, and stops the pool.
func (p *pool) close() {
	close(p.work)
	p.wg.Wait()
}

type metadataKey struct{}

type msgMetadata struct {
	m    jetstream.Msg
	meta *jetstream.MsgMetadata
}

// Metadata returns m's JetStream metadata: parsed once by the worker and
// carried in the handler's context, or parsed here for any other message.
func Metadata(ctx context.Context, m jetstream.Msg) (*jetstream.MsgMetadata, error) {
	switch v := ctx.Value(metadataKey{}).(type) {
	case msgMetadata:
		if v.m == m {
			return v.meta, nil
		}
	case []msgMetadata:
		for _, x := range v {
			if x.m == m {
				return x.meta, nil
			}
		}
	}
	return m.Metadata()
}

// next returns the iterator's next message, or false once it is closed;
// other errors (a missed heartbeat, a reconnect) the iterator recovers from.
func (w *Worker) next(it jetstream.MessagesContext) (jetstream.Msg, bool) {
	for {
		m, err := it.Next()
		if err == nil {
			return m, true
		}
		if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
			return nil, false
		}
		w.cfg.Logger.Debug("consume: next", zap.Error(err))
	}
}

// consumeBatches hands the iterator's messages to the BatchHandler until the
// iterator closes; it reports whether any message came.
func (w *Worker) consumeBatches(hctx context.Context, it jetstream.MessagesContext, sem chan struct{}, handlers *pool, wg *sync.WaitGroup) bool {
	// The iterator has no non-blocking Next: a goroutine feeds a channel the
	// batches are taken from. It holds one batch, so messages delivered but
	// not yet handled stay few (their AckWait is running).
	in := make(chan jetstream.Msg, w.cfg.MaxBatch)
	go func() {
		defer close(in)
		for {
			m, ok := w.next(it)
			if !ok {
				return
			}
			in <- m
		}
	}()
	got := false
	for m := range in {
		got = true
		sem <- struct{}{}
		batch := []jetstream.Msg{m}
		var linger <-chan time.Time
		var lingerTimer *time.Timer
		if w.cfg.Linger > 0 {
			lingerTimer = time.NewTimer(w.cfg.Linger)
			linger = lingerTimer.C
		}
	collect:
		for len(batch) < w.cfg.MaxBatch {
			select {
			case sem <- struct{}{}:
			default:
				break collect // Concurrency messages in flight
			}
			select {
			case m, ok := <-in:
				if !ok {
					<-sem
					break collect
				}
				batch = append(batch, m)
				continue
			default:
			}
			if linger == nil {
				<-sem
				break collect
			}
			select {
			case m, ok := <-in:
				if ok {
					batch = append(batch, m)
					continue
				}
				<-sem
				break collect
			case <-linger:
				<-sem
				linger = nil
				break collect
			}
		}
		if lingerTimer != nil {
			lingerTimer.Stop()
		}
		wg.Add(1)
		handlers.run(func() {
			defer func() {
				for range batch {
					<-sem
				}
				wg.Done()
			}()
			w.processBatch(hctx, batch)
		})
	}
	return got
}

// processBatch runs the BatchHandler with heartbeats and carries out each
// outcome, in order.
func (w *Worker) processBatch(ctx context.Context, batch []jetstream.Msg) {
	start := time.Now()
	msgs := make([]jetstream.Msg, 0, len(batch))
	metas := make([]msgMetadata, 0, len(batch))
	for _, m := range batch {
		meta, err := m.Metadata()
		if err != nil {
			w.cfg.Logger.Error("message without metadata", zap.Error(err))
			continue
		}
		if meta.NumDelivered > 1 {
			w.metrics.redeliveries.Inc()
		}
		msgs = append(msgs, m)
		metas = append(metas, msgMetadata{m, meta})
	}
	if len(msgs) == 0 {
		return
	}
	w.metrics.inFlight.Add(float64(len(msgs)))
	defer w.metrics.inFlight.Sub(float64(len(msgs)))
	w.metrics.batchSize.Observe(float64(len(msgs)))

	outs := w.handleBatch(context.WithValue(ctx, metadataKey{}, metas), msgs)
	took := time.Since(start).Seconds()
	for i, m := range msgs {
		w.metrics.handleSeconds.Observe(took)
		meta := metas[i].meta
		w.carryOut(ctx, m, meta, w.lastDelivery(outs[i], meta), w.msgLogger(m, meta))
	}
}

// handleBatch calls the BatchHandler, recovering a panic (or a wrong number
// of outcomes) into a retry of every message, and sending InProgress for
// each while it runs longer than a third of AckWait.
func (w *Worker) handleBatch(ctx context.Context, msgs []jetstream.Msg) (outs []Outcome) {
	if w.cfg.HandleTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, w.cfg.HandleTimeout)
		defer cancel()
	}
	defer w.heartbeat(w.cfg.Logger, msgs...)()
	retryAll := func(err error) []Outcome {
		outs := make([]Outcome, len(msgs))
		for i := range outs {
			outs[i] = Retry(0, reasonPanic, err)
		}
		return outs
	}
	defer func() {
		if r := recover(); r != nil {
			w.cfg.Logger.Error("batch handler panic", zap.Any("panic", r), zap.Stack("stack"))
			outs = retryAll(fmt.Errorf("handler panic: %v", r))
		}
	}()
	outs = w.cfg.BatchHandler(ctx, msgs)
	if len(outs) != len(msgs) {
		w.cfg.Logger.Error("batch handler returned the wrong number of outcomes", zap.Int("messages", len(msgs)), zap.Int("outcomes", len(outs)))
		return retryAll(fmt.Errorf("batch handler: %d outcomes for %d messages", len(outs), len(msgs)))
	}
	return outs
}

// process runs the handler with heartbeats and carries out its outcome.
func (w *Worker) process(ctx context.Context, m jetstream.Msg) {
	start := time.Now()
	meta, err := m.Metadata()
	if err != nil {
		// Not a JetStream message: nothing to ack.
		w.cfg.Logger.Error("message without metadata", zap.Error(err))
		return
	}
	log := w.msgLogger(m, meta)
	if meta.NumDelivered > 1 {
		w.metrics.redeliveries.Inc()
	}
	w.metrics.inFlight.Inc()
	defer w.metrics.inFlight.Dec()

	out := w.handle(context.WithValue(ctx, metadataKey{}, msgMetadata{m, meta}), m, log)
	w.metrics.handleSeconds.Observe(time.Since(start).Seconds())
	w.carryOut(ctx, m, meta, w.lastDelivery(out, meta), log)
}

// msgLogger returns the logger of one message. Lazy: the fields are encoded
// only when something is logged, which is rare on the hot path.
func (w *Worker) msgLogger(m jetstream.Msg, meta *jetstream.MsgMetadata) *zap.Logger {
	return w.cfg.Logger.WithLazy(zap.String("subject", m.Subject()), zap.Uint64("stream_seq", meta.Sequence.Stream),
		zap.Uint64("deliveries", meta.NumDelivered))
}

// lastDelivery turns a Retry on the consumer's last delivery into a dead
// letter: nothing is dropped when MaxDeliver runs out.
func (w *Worker) lastDelivery(out Outcome, meta *jetstream.MsgMetadata) Outcome {
	if out.Kind != KindRetry || int(meta.NumDelivered) < w.cfg.MaxDeliver {
		return out
	}
	reason := out.Reason
	if reason == "" {
		reason = "max_deliveries"
	}
	return Outcome{Kind: KindDeadLetter, Reason: reason, Headers: out.Headers,
		Err: fmt.Errorf("deliveries exhausted (%d): %w", meta.NumDelivered, errOr(out.Err))}
}

// heartbeat sends InProgress for msgs every third of AckWait until the
// returned stop is called, so JetStream does not redeliver them meanwhile.
// A timer, not a goroutine per message: it fires only for the rare handler
// that runs that long.
func (w *Worker) heartbeat(log *zap.Logger, msgs ...jetstream.Msg) (stop func()) {
	every := w.cfg.AckWait / 3
	var done atomic.Bool
	var t *time.Timer
	t = time.AfterFunc(every, func() {
		if done.Load() {
			return
		}
		for _, m := range msgs {
			if err := m.InProgress(); err != nil {
				log.Debug("in progress", zap.Error(err))
			}
		}
		t.Reset(every)
	})
	return func() { done.Store(true); t.Stop() }
}

func errOr(err error) error {
	if err == nil {
		return errors.New("retry requested")
	}
	return err
}

// handle calls the handler, recovering a panic into a retry and sending
// InProgress while it runs longer than a third of AckWait.
func (w *Worker) handle(ctx context.Context, m jetstream.Msg, log *zap.Logger) (out Outcome) {
	if w.cfg.HandleTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, w.cfg.HandleTimeout)
		defer cancel()
	}
	defer w.heartbeat(log, m)()
	defer func() {
		if r := recover(); r != nil {
			log.Error("handler panic", zap.Any("panic", r), zap.Stack("stack"))
			out = Retry(0, reasonPanic, fmt.Errorf("handler panic: %v", r))
		}
	}()
	return w.cfg.Handler(ctx, m)
}

// carryOut acks, naks with delay, or dead-letters then terminates. A dead
// letter that cannot be published is retried, never terminated: nothing is
// given up before it is safely stored.
func (w *Worker) carryOut(ctx context.Context, m jetstream.Msg, meta *jetstream.MsgMetadata, out Outcome, log *zap.Logger) {
	switch out.Kind {
	case KindAck:
		w.acks.send(m, out.BeforeAck, log)
	case KindRetry:
		d := out.After
		if d <= 0 {
			d = w.cfg.Backoff.Delay(meta.NumDelivered)
		}
		log.Info("retry", zap.String("reason", out.Reason), zap.Duration("delay", d), zap.Error(out.Err))
		if err := m.NakWithDelay(d); err != nil {
			log.Warn("nak", zap.Error(err))
		}
		w.metrics.outcomes.WithLabelValues("retry", out.Reason).Inc()
	case KindDeadLetter:
		if err := w.deadLetter(ctx, m, meta, out); err != nil {
			d := w.cfg.Backoff.Delay(meta.NumDelivered)
			log.Error("dead letter not stored; message kept for redelivery", zap.Error(err), zap.Duration("delay", d))
			_ = m.NakWithDelay(d)
			w.metrics.outcomes.WithLabelValues("retry", reasonDLQUnavailable).Inc()
			return
		}
		log.Warn("dead-lettered", zap.String("reason", out.Reason), zap.Error(out.Err))
		if err := m.TermWithReason(out.Reason); err != nil {
			log.Warn("term", zap.Error(err))
		}
		w.metrics.outcomes.WithLabelValues("dead_letter", out.Reason).Inc()
	}
}

// deadLetter publishes the message, its original headers and the failure to
// the dead-letter subject and waits for the acknowledgement.
func (w *Worker) deadLetter(ctx context.Context, m jetstream.Msg, meta *jetstream.MsgMetadata, out Outcome) error {
	dl := BuildDeadLetter(m.Subject(), m.Headers(), m.Data(), DeadLetterInfo{
		Subject:    w.cfg.DLQSubject(out.Reason),
		Stage:      w.cfg.Stage,
		Reason:     out.Reason,
		Err:        out.Err,
		Stream:     meta.Stream,
		Consumer:   meta.Consumer,
		StreamSeq:  meta.Sequence.Stream,
		Deliveries: meta.NumDelivered,
		Extra:      out.Headers,
	})
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := w.cfg.Publisher.PublishMsg(pctx, dl); err != nil {
		return fmt.Errorf("publish dead letter %s: %w", dl.Subject, err)
	}
	return nil
}

// DeadLetterInfo describes a failure for BuildDeadLetter.
type DeadLetterInfo struct {
	Subject    string
	Stage      string
	Reason     string
	Err        error
	Stream     string
	Consumer   string
	StreamSeq  uint64
	Deliveries uint64
	Extra      map[string]string
}

// maxErrorHeader bounds Zen-Error so a huge error cannot bloat a header.
const maxErrorHeader = 1024

// BuildDeadLetter returns the dead-letter message: the original body and
// headers (the original Nats-Msg-Id kept as Zen-Original-Msg-Id) plus
// Zen-Error, Zen-Reason, Zen-Stage, Zen-Deliveries, Zen-Original-Stream,
// Zen-Original-Subject, Zen-Original-Seq and Zen-Failed-At. Its Nats-Msg-Id
// is stream:consumer:seq, so a dead letter stored twice (a crash between
// publish and Term) is kept once.
func BuildDeadLetter(subject string, hdr nats.Header, data []byte, info DeadLetterInfo) *nats.Msg {
	out := nats.NewMsg(info.Subject)
	out.Data = data
	for k, vs := range hdr {
		if k == zen.HeaderMsgID {
			out.Header.Set(HeaderOriginalMsgID, vs[0])
			continue
		}
		if len(k) > 4 && k[:4] == "Nats" {
			continue
		}
		for _, v := range vs {
			out.Header.Add(k, v)
		}
	}
	errText := "unknown error"
	if info.Err != nil {
		errText = info.Err.Error()
	}
	if len(errText) > maxErrorHeader {
		errText = errText[:maxErrorHeader]
	}
	out.Header.Set(zen.HeaderError, errText)
	out.Header.Set(zen.HeaderReason, info.Reason)
	out.Header.Set(zen.HeaderStage, info.Stage)
	out.Header.Set(zen.HeaderDeliveries, strconv.FormatUint(info.Deliveries, 10))
	out.Header.Set(zen.HeaderOrigStream, info.Stream)
	out.Header.Set(zen.HeaderOrigSubj, subject)
	out.Header.Set(zen.HeaderOrigSeq, strconv.FormatUint(info.StreamSeq, 10))
	out.Header.Set(zen.HeaderFailedAt, time.Now().UTC().Format(time.RFC3339Nano))
	for k, v := range info.Extra {
		out.Header.Set(k, v)
	}
	out.Header.Set(zen.HeaderMsgID, info.Stream+":"+info.Consumer+":"+strconv.FormatUint(info.StreamSeq, 10))
	return out
}

// HeaderOriginalMsgID keeps a dead letter's original Nats-Msg-Id, restored
// when it is replayed.
const HeaderOriginalMsgID = "Zen-Original-Msg-Id"

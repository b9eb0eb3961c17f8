// Package forwarder delivers Zen events (stream ZEN_EVENTS) to the targets
// of the transform package over HTTP: one durable consumer
// `forwarder-<target>` per target, filtered to the event types its flows
// route to it and shared by all replicas. 2xx acks; network errors, 408, 429
// and 5xx are redelivered on a schedule (or after Retry-After); other 4xx
// and exhausted deliveries are dead-lettered on zen.dlq.forwarder.<target>.
// Each event key is delivered once per target (bucket zen_dedupe), and
// every attempt is recorded on zen.attempts.<target>.
package forwarder

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/zen-twilio/zen/pkg/httpserve"
	"github.com/zen-twilio/zen/pkg/natsconn"
	"github.com/zen-twilio/zen/pkg/pack"
	"github.com/zen-twilio/zen/pkg/streams"
	"github.com/zen-twilio/zen/pkg/tracing"
	"github.com/zen-twilio/zen/pkg/worker"
	"github.com/zen-twilio/zen/pkg/zen"
)

// Service is a running forwarder. Create with New, then Run once.
type Service struct {
	cfg      Config
	log      *zap.Logger
	nc       *nats.Conn
	ownsConn bool
	js       jetstream.JetStream
	// requests carries the dedupe reads and, without waiting, the dedupe
	// entries and attempt records.
	requests *natsconn.Requests
	ops      *httpserve.Ops
	ln       net.Listener
	metrics  *metrics
	tracer   *tracing.Tracer
	targets  []*targetWorker

	ddMu sync.Mutex
	dd   *dedupe // the zen_dedupe reader, bound on first use

	// stopping is closed when Run's context ends: deliveries waiting at a
	// target's gate give up.
	stopping chan struct{}
}

type targetWorker struct {
	route  streams.Route
	target pack.Target
	policy policy
	router *router
	gate   *gate
	deliv  *deliverer
	worker *worker.Worker
}

// New loads the package, connects to NATS (or uses cfg.Conn) and prepares
// one worker per target; it does not consume until Run.
func New(ctx context.Context, cfg Config, log *zap.Logger) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	p, err := pack.Load(cfg.PackageDir, cfg.Lookup)
	if err != nil {
		return nil, fmt.Errorf("load package %s: %w", cfg.PackageDir, err)
	}
	routes := p.Routes()
	if len(routes) == 0 {
		return nil, fmt.Errorf("package %s routes no event to any target", cfg.PackageDir)
	}
	s := &Service{cfg: cfg, log: log, stopping: make(chan struct{})}
	policies := map[string]policy{}
	var perr []error
	for _, r := range routes {
		t, _ := p.Target(r.Target)
		pol, err := resolvePolicy(*t, cfg)
		perr = append(perr, err)
		policies[r.Target] = pol
	}
	if err := errors.Join(perr...); err != nil {
		return nil, fmt.Errorf("package %s: %w", cfg.PackageDir, err)
	}
	if cfg.Conn != nil {
		s.nc = cfg.Conn
	} else {
		nc, err := cfg.NATS.Connect("zen-forwarder", log)
		if err != nil {
			return nil, err
		}
		s.nc, s.ownsConn = nc, true
	}
	s.ops = httpserve.NewOps(s.ready)
	s.metrics = newMetrics(s.ops.Registry)
	if s.js, err = jetstream.New(s.nc); err != nil {
		s.close()
		return nil, err
	}
	if s.requests, err = natsconn.NewRequests(s.nc, natsTimeout); err != nil {
		s.close()
		return nil, err
	}
	if s.tracer, err = tracing.New(ctx, cfg.Tracing, tracingScope, log); err != nil {
		s.close()
		return nil, err
	}
	rt := cfg.Transport
	if rt == nil {
		rt = newTransport(cfg.Concurrency)
	}
	for _, r := range routes {
		t, _ := p.Target(r.Target)
		pol := policies[r.Target]
		tlog := log.With(zap.String("target", r.Target))
		tw := &targetWorker{route: r, target: *t, policy: pol, router: newRouter(p, r.Target, r.EventTypes),
			deliv: newDeliverer(*t, rt, pol.timeout, cfg, s.tracer)}
		tw.gate = newGate(r.Target, pol, s.metrics, s.pauser(r.Target, tlog), s.resumer(r.Target, tlog), s.stopping, tlog)
		retryReasons, deadLetterReasons := targetReasons(pol.retryable)
		s.metrics.startTarget(r.Target, retryReasons, deadLetterReasons)
		tw.worker, err = worker.New(worker.Config{
			Stage:             streams.StageForwarder,
			Consumer:          s.consumerFor(r, pol.consumer),
			Publisher:         s.js,
			Handler:           s.traced(r.Target, s.handlerFor(tw)),
			DLQSubject:        func(string) string { return streams.DLQSubject(streams.StageForwarder, r.Target) },
			Concurrency:       pol.concurrency,
			MaxDeliver:        pol.consumer.MaxDeliver,
			Backoff:           pol.retry,
			AckWait:           pol.consumer.AckWait,
			Logger:            tlog,
			Registerer:        prometheusWrap(s.ops, r.Target),
			RetryReasons:      retryReasons,
			DeadLetterReasons: deadLetterReasons,
		})
		if err != nil {
			s.close()
			return nil, err
		}
		s.targets = append(s.targets, tw)
	}
	if !cfg.DisableOps {
		if s.ln, err = net.Listen("tcp", cfg.ListenAddr); err != nil {
			s.close()
			return nil, fmt.Errorf("env var `LISTEN_ADDR`: %w", err)
		}
	}
	return s, nil
}

// Handler serves /healthz, /readyz and /metrics.
func (s *Service) Handler() http.Handler { return s.ops.Handler() }

// Addr is the ops listener's address (nil with DisableOps).
func (s *Service) Addr() net.Addr {
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// pauser pauses target's consumer on the server until a time, for every
// replica: its events wait in ZEN_EVENTS while its circuit is open.
func (s *Service) pauser(target string, log *zap.Logger) func(time.Time) {
	return func(until time.Time) {
		ctx, cancel := context.WithTimeout(context.Background(), natsTimeout)
		defer cancel()
		if _, err := s.js.PauseConsumer(ctx, streams.StreamEvents, streams.ForwarderConsumer(target), until); err != nil {
			log.Warn("pause consumer", zap.Error(err))
		}
	}
}

// resumer resumes target's consumer once its circuit closed.
func (s *Service) resumer(target string, log *zap.Logger) func() {
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), natsTimeout)
		defer cancel()
		if _, err := s.js.ResumeConsumer(ctx, streams.StreamEvents, streams.ForwarderConsumer(target)); err != nil {
			log.Warn("resume consumer", zap.Error(err))
		}
	}
}

func (s *Service) consumerFor(r streams.Route, settings streams.ConsumerSettings) func(context.Context) (jetstream.Consumer, error) {
	return func(ctx context.Context) (jetstream.Consumer, error) {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if s.cfg.StreamsApply {
			if err := streams.Apply(ctx, s.js, s.cfg.Streams); err != nil {
				return nil, err
			}
		}
		cc, err := streams.ForwarderConsumerConfig(r.Target, r.EventTypes, settings)
		if err != nil {
			return nil, err
		}
		return s.js.CreateOrUpdateConsumer(ctx, streams.StreamEvents, cc)
	}
}

// dedupeBucket returns the zen_dedupe bucket's reader, binding it on first
// use (once bound, every event gets the same one).
func (s *Service) dedupeBucket(ctx context.Context) (*dedupe, error) {
	s.ddMu.Lock()
	defer s.ddMu.Unlock()
	if s.dd == nil {
		kv, err := s.js.KeyValue(ctx, streams.BucketDedupe)
		if err != nil {
			return nil, fmt.Errorf("bind kv %s: %w", streams.BucketDedupe, err)
		}
		st, err := kv.Status(ctx)
		if err != nil {
			return nil, fmt.Errorf("bind kv %s: %w", streams.BucketDedupe, err)
		}
		d := &dedupe{kv: kv, requests: s.requests}
		if bs, ok := st.(*jetstream.KeyValueBucketStatus); ok && bs.StreamInfo().Config.AllowDirect {
			d.direct = true // direct gets answered: read with one
		}
		s.dd = d
	}
	return s.dd, nil
}

func (s *Service) ready(ctx context.Context) error {
	if !s.nc.IsConnected() {
		return fmt.Errorf("nats: %s", s.nc.Status())
	}
	return streams.Check(ctx, s.js)
}

// handlerFor delivers one event to tw's target.
func (s *Service) handlerFor(tw *targetWorker) worker.Handler {
	name := tw.target.Name
	// The target's series, bound once.
	inFlight, latency := s.metrics.inFlight.WithLabelValues(name), s.metrics.latency.WithLabelValues(name)
	attempts := map[string]prometheus.Counter{}
	for _, c := range []string{"2xx", "3xx", "4xx", "5xx", "error", "duplicate", "filtered"} {
		attempts[c] = s.metrics.attempts.WithLabelValues(name, c)
	}
	attempt := func(class string) prometheus.Counter {
		if c, ok := attempts[class]; ok {
			return c
		}
		return s.metrics.attempts.WithLabelValues(name, class)
	}
	return func(ctx context.Context, m jetstream.Msg) worker.Outcome {
		meta, err := worker.Metadata(ctx, m)
		if err != nil {
			return worker.DeadLetter(ReasonNoMetadata, err)
		}
		h := m.Headers()
		key := h.Get(zen.HeaderDedupeKey)
		if key == "" {
			key = h.Get(zen.HeaderMsgID)
		}
		seq := meta.Sequence.Stream
		att := Attempt{EventID: streams.StreamEvents + ":" + strconv.FormatUint(seq, 10), DedupeKey: key, Target: name,
			EventType: h.Get(zen.HeaderEventType), Attempt: int(meta.NumDelivered)}
		if key == "" {
			att.Outcome, att.Error = "dead_letter", "event has no dedupe key"
			s.recordAttempt(att)
			return worker.DeadLetter(ReasonNoDedupeKey, errors.New("event has no Zen-Dedupe-Key or Nats-Msg-Id"))
		}
		switch ok, err := tw.router.pass(att.EventType, h, m.Data()); {
		case err != nil:
			att.Outcome, att.Error = "dead_letter", err.Error()
			s.recordAttempt(att)
			return worker.DeadLetter(ReasonUndecodableEvent, err)
		case !ok:
			s.metrics.filtered.WithLabelValues(name).Inc()
			attempt("filtered").Inc()
			att.Outcome = "filtered"
			return worker.AckAfter(func() { s.recordAttempt(att) })
		}
		dd, err := s.dedupeBucket(ctx)
		if err != nil {
			return worker.Retry(0, ReasonDedupeUnavailable, err)
		}
		kvKey := streams.KVKey(name, key)
		done, err := dd.isDelivered(ctx, kvKey)
		if err != nil {
			return worker.Retry(0, ReasonDedupeUnavailable, err)
		}
		if done {
			s.metrics.dedupeHits.WithLabelValues(name).Inc()
			attempt("duplicate").Inc()
			att.Outcome = "duplicate"
			return worker.AckAfter(func() { s.recordAttempt(att) })
		}

		body, err := tw.deliv.body(m.Data())
		if err != nil {
			att.Outcome, att.Error = "dead_letter", err.Error()
			s.recordAttempt(att)
			return worker.DeadLetter(ReasonUndecodableEvent, err)
		}
		passed, err := tw.gate.pass(ctx)
		if err != nil {
			// Stopping while the circuit is open: the event goes back to
			// the stream for the next replica or start.
			return worker.Retry(0, ReasonStopping, err)
		}
		inFlight.Inc()
		start := time.Now()
		res := tw.deliv.post(ctx, body, key)
		took := time.Since(start)
		inFlight.Dec()
		latency.Observe(took.Seconds())
		attempt(class(res)).Inc()

		out := Classify(res.status, res.err, res.retryAfter, res.snippet, s.cfg.Now(), s.cfg.MaxRetryAfter, tw.policy.retryable)
		passed(out.Kind == worker.KindRetry)
		att.Status, att.LatencyMS = res.status, float64(took.Microseconds())/1000
		if out.Err != nil {
			att.Error = out.Err.Error()
		}
		last := int(meta.NumDelivered) >= tw.policy.consumer.MaxDeliver
		switch {
		case out.Kind == worker.KindAck:
			// The entry, the record and the ack leave in that order, with
			// those of the other handlers done at the same moment.
			att.Outcome = "delivered"
			out.BeforeAck = func() {
				entryStored := func(_ bool, err error) {
					if err != nil {
						s.dedupeRecordFailed(kvKey, err)
					}
				}
				if err := dd.markDelivered(kvKey, s.cfg.Streams.DedupeTTLFor(att.EventType), seq, s.cfg.Now(), entryStored); err != nil {
					s.dedupeRecordFailed(kvKey, err)
				}
				s.recordAttempt(att)
			}
			return out
		case out.Kind == worker.KindDeadLetter || last:
			att.Outcome = "dead_letter"
			s.metrics.deadLetters.WithLabelValues(name, out.Reason).Inc()
		default:
			att.Outcome = "retry"
		}
		s.recordAttempt(att)
		return out
	}
}

// dedupeRecordFailed: the event was delivered all the same, and acked. Only
// a later copy of it could be POSTed again; the Idempotency-Key covers that.
func (s *Service) dedupeRecordFailed(kvKey string, err error) {
	s.metrics.dedupeRecordsFailed.Inc()
	s.log.Warn("delivered but the dedupe key was not recorded", zap.String("key", kvKey), zap.Error(err))
}

func class(r result) string {
	if r.err != nil {
		return "error"
	}
	switch r.status / 100 {
	case 2:
		return "2xx"
	case 3:
		return "3xx"
	case 4:
		return "4xx"
	case 5:
		return "5xx"
	}
	return strconv.Itoa(r.status/100) + "xx"
}

// Run consumes every target until ctx ends; then /readyz turns false, the
// workers stop pulling and finish their in-flight deliveries, the ops server
// stops and the NATS connection is drained.
func (s *Service) Run(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { s.ops.SetDraining(); close(s.stopping) })
	defer stop()
	opsDone := make(chan error, 1)
	if s.ln != nil {
		go func() { opsDone <- httpserve.Serve(ctx, httpserve.NewServer(s.ops.Handler()), s.ln, 5*time.Second) }()
	} else {
		opsDone <- nil
	}
	go streams.WarnCapacity(ctx, s.js, s.cfg.Streams, s.cfg.Capacity, s.log)
	errs := make(chan error, len(s.targets))
	for _, tw := range s.targets {
		s.log.Info("forwarder consuming", zap.String("target", tw.target.Name), zap.Strings("events", tw.route.EventTypes),
			zap.Int("concurrency", tw.policy.concurrency), zap.Int("attempts", tw.policy.consumer.MaxDeliver), zap.Duration("timeout", tw.policy.timeout),
			zap.Duration("retry_initial", tw.policy.retry.Initial), zap.Duration("retry_max", tw.policy.retry.Max), zap.Bool("retry_linear", tw.policy.retry.Linear),
			zap.Float64("rate_limit_per_second", tw.policy.rate.PerSecond), zap.Bool("circuit_breaker", tw.policy.breaker.Enabled))
		go func() { errs <- tw.worker.Run(ctx) }()
	}
	var err error
	for range s.targets {
		err = errors.Join(err, <-errs)
	}
	// The workers are done: no read waits, and the last entries and records
	// get their acknowledgements (or are counted as failed).
	err = errors.Join(err, s.requests.Stop())
	err = errors.Join(err, <-opsDone)
	if s.ownsConn {
		err = errors.Join(err, natsconn.Drain(s.nc, s.cfg.ShutdownGrace))
	}
	err = errors.Join(err, s.tracer.Close()) // the last spans
	s.log.Info("forwarder stopped")
	return err
}

func (s *Service) close() {
	_ = s.tracer.Close()
	if s.requests != nil {
		_ = s.requests.Stop()
	}
	if s.ownsConn {
		s.nc.Close()
	}
}

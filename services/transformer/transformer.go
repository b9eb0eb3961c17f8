// Package transformer turns raw Twilio requests (stream TWILIO_RAW) into Zen
// events (stream ZEN_EVENTS) with the rules of the transform package. It
// reads the durable consumer `transformer`, which all replicas share, and
// acknowledges a raw message only after every event it produced was
// acknowledged by JetStream; what can never be transformed is dead-lettered
// on zen.dlq.transformer.<reason> with the original body and headers.
package transformer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/zen-twilio/zen/pkg/httpserve"
	"github.com/zen-twilio/zen/pkg/natsconn"
	"github.com/zen-twilio/zen/pkg/pack"
	"github.com/zen-twilio/zen/pkg/streams"
	"github.com/zen-twilio/zen/pkg/tracing"
	"github.com/zen-twilio/zen/pkg/transform"
	"github.com/zen-twilio/zen/pkg/worker"
)

// Service is a running transformer. Create with New, then Run once.
type Service struct {
	cfg      Config
	log      *zap.Logger
	nc       *nats.Conn
	ownsConn bool
	js       jetstream.JetStream
	requests *natsconn.Requests // the events' publishes
	engine   *transform.Engine
	worker   *worker.Worker
	ops      *httpserve.Ops
	ln       net.Listener
	metrics  *metrics
	tracer   *tracing.Tracer
}

// New loads the package, connects to NATS (or uses cfg.Conn) and prepares
// the worker; it does not consume until Run. A nil logger logs nothing.
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
	// The transformer needs the rules, not the targets' URLs or secrets:
	// a missing {{NAME}} is fine here (the forwarder requires them).
	p, err := pack.LoadWith(cfg.PackageDir, cfg.Lookup, pack.Options{AllowMissingEnv: true})
	if err != nil {
		return nil, fmt.Errorf("load package %s: %w", cfg.PackageDir, err)
	}
	for _, w := range p.Warnings {
		log.Warn("package", zap.String("finding", w.String()))
	}
	engine, err := transform.New(p, transform.WithClock(cfg.Now), transform.WithRedactKey(cfg.RedactKey))
	if err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, log: log, engine: engine}
	if cfg.Conn != nil {
		s.nc = cfg.Conn
	} else {
		nc, err := cfg.NATS.Connect("zen-transformer", log)
		if err != nil {
			return nil, err
		}
		s.nc, s.ownsConn = nc, true
	}
	if s.js, err = jetstream.New(s.nc); err != nil {
		s.close()
		return nil, err
	}
	if s.requests, err = natsconn.NewRequests(s.nc, cfg.PublishTimeout); err != nil {
		s.close()
		return nil, err
	}
	if s.tracer, err = tracing.New(ctx, cfg.Tracing, tracingScope, log); err != nil {
		s.close()
		return nil, err
	}
	s.ops = httpserve.NewOps(s.ready)
	s.metrics = newMetrics(s.ops.Registry, p.Rules)
	s.worker, err = worker.New(worker.Config{
		Stage:             streams.StageTransformer,
		Consumer:          s.consumer,
		Publisher:         s.js,
		BatchHandler:      s.handleBatch,
		MaxBatch:          min(cfg.Batch, cfg.Concurrency),
		Linger:            cfg.Linger,
		DLQSubject:        func(reason string) string { return streams.DLQSubject(streams.StageTransformer, reason) },
		Concurrency:       cfg.Concurrency,
		MaxDeliver:        cfg.Consumer.MaxDeliver,
		Backoff:           cfg.Retry,
		AckWait:           cfg.Consumer.AckWait,
		Logger:            log,
		Registerer:        s.ops.Registry,
		RetryReasons:      []string{ReasonPublish},
		DeadLetterReasons: deadLetterReasons,
	})
	if err != nil {
		s.close()
		return nil, err
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

// consumer creates or updates the durable `transformer` consumer; the worker
// calls it again after a lost connection or a deleted consumer.
func (s *Service) consumer(ctx context.Context) (jetstream.Consumer, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if s.cfg.StreamsApply {
		if err := streams.Apply(ctx, s.js, s.cfg.Streams); err != nil {
			return nil, err
		}
	}
	return s.js.CreateOrUpdateConsumer(ctx, streams.StreamRaw, streams.TransformerConsumer(s.cfg.Consumer))
}

func (s *Service) ready(ctx context.Context) error {
	if !s.nc.IsConnected() {
		return fmt.Errorf("nats: %s", s.nc.Status())
	}
	return streams.Check(ctx, s.js)
}

// Run consumes until ctx ends; then /readyz turns false, the worker stops
// pulling and finishes the messages it holds, the ops server stops and the
// NATS connection is drained. It returns the joined errors of those steps.
func (s *Service) Run(ctx context.Context) error {
	stop := context.AfterFunc(ctx, s.ops.SetDraining)
	defer stop()
	opsDone := make(chan error, 1)
	if s.ln != nil {
		go func() { opsDone <- httpserve.Serve(ctx, httpserve.NewServer(s.ops.Handler()), s.ln, 5*time.Second) }()
	} else {
		opsDone <- nil
	}
	go streams.WarnCapacity(ctx, s.js, s.cfg.Streams, s.cfg.Capacity, s.log)
	s.log.Info("transformer consuming", zap.String("stream", streams.StreamRaw), zap.String("consumer", streams.ConsumerTransformer), zap.Int("concurrency", s.cfg.Concurrency))
	err := s.worker.Run(ctx)
	err = errors.Join(err, s.requests.Stop()) // no batch waits for an ack
	err = errors.Join(err, <-opsDone)
	if s.ownsConn {
		err = errors.Join(err, natsconn.Drain(s.nc, s.cfg.ShutdownGrace))
	}
	err = errors.Join(err, s.tracer.Close()) // the last spans
	s.log.Info("transformer stopped")
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

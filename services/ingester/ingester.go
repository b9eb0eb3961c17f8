// Package ingester receives Twilio webhooks, verifies X-Twilio-Signature,
// and stores the raw request in the TWILIO_RAW stream. It answers Twilio
// only once JetStream acknowledged the publish: a 2xx means durable. When
// JetStream cannot acknowledge in time it answers 503 with Retry-After, so
// Twilio's retry applies.
//
// The Service is a library: the ingester binary, `zen dev` and the tests run
// the same code.
package ingester

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"golang.org/x/net/netutil"

	"github.com/zen-twilio/zen/pkg/envconf"
	"github.com/zen-twilio/zen/pkg/httpserve"
	"github.com/zen-twilio/zen/pkg/natsconn"
	"github.com/zen-twilio/zen/pkg/pack"
	"github.com/zen-twilio/zen/pkg/streams"
	"github.com/zen-twilio/zen/pkg/tracing"
	"github.com/zen-twilio/zen/pkg/twiliosig"
)

// Service is a running ingester. Create with New, then Run once.
type Service struct {
	cfg       Config
	log       *zap.Logger
	nc        *nats.Conn
	ownsConn  bool
	js        jetstream.JetStream
	keyring   *twiliosig.Keyring // nil with INSECURE_SKIP_SIGNATURE
	responses map[string]pack.Response
	known     map[string]bool
	ln        net.Listener
	ops       *httpserve.Ops
	metrics   *metrics
	inflight  chan struct{} // publish slots (MAX_IN_FLIGHT)
	bodies    *bodyBudget   // the bodies held at once (BODY_MEMORY_BYTES)
	handler   http.Handler
	requests  *natsconn.Requests // the publishes, sent in groups
	tracer    *tracing.Tracer

	streamsMu sync.Mutex
	streamsOK bool
}

// New validates cfg, connects to NATS (or uses cfg.Conn) and binds the
// listener; it does not serve until Run. A nil logger logs nothing.
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
	s := &Service{cfg: cfg, log: log, inflight: make(chan struct{}, cfg.MaxInFlight), known: knownEvents,
		bodies: &bodyBudget{limit: cfg.BodyMemoryBytes},
		responses: map[string]pack.Response{
			EventIncomingMessage: {ContentType: "text/xml", Body: "<Response/>"},
			EventIncomingCall:    {ContentType: "text/xml", Body: "<Response/>"},
		}}
	if cfg.InsecureSkipSignature {
		log.Warn("SIGNATURE VERIFICATION IS OFF (INSECURE_SKIP_SIGNATURE=true): anyone can forge Twilio webhooks; for local experiments only")
	} else {
		k, err := cfg.keyring()
		if err != nil {
			return nil, fmt.Errorf("env var `TWILIO_AUTH_TOKEN`: %w", err)
		}
		s.keyring = k
		if k.PerAccount() {
			log.Info("verifying each request with the tokens of the account it names", zap.Int("accounts", k.Accounts()))
		}
	}
	if cfg.PackageDir != "" {
		// The ingester needs no target secrets: missing variables are fine here.
		p, err := pack.LoadWith(cfg.PackageDir, envconf.MapLookup(nil), pack.Options{AllowMissingEnv: true})
		if err != nil {
			return nil, fmt.Errorf("env var `PACKAGE_DIR`: %w", err)
		}
		s.responses = map[string]pack.Response{}
		s.known = map[string]bool{}
		for _, r := range p.Rules {
			s.known[r.TwilioEvent] = true
			if resp, ok := p.Response(r.TwilioEvent); ok {
				s.responses[r.TwilioEvent] = resp
			}
		}
	}

	if cfg.Conn != nil {
		s.nc = cfg.Conn
	} else {
		nc, err := cfg.NATS.Connect("zen-ingester", log)
		if err != nil {
			return nil, err
		}
		s.nc, s.ownsConn = nc, true
	}
	js, err := jetstream.New(s.nc)
	if err != nil {
		s.closeConn()
		return nil, err
	}
	s.js = js
	if s.requests, err = natsconn.NewRequests(s.nc, cfg.PublishTimeout); err != nil {
		s.closeConn()
		return nil, fmt.Errorf("subscribe to the publish replies: %w", err)
	}

	s.ops = httpserve.NewOps(s.ready)
	s.metrics = newMetrics(s.ops.Registry, func() float64 { return float64(len(s.inflight)) }, s.known)
	mux := http.NewServeMux()
	s.ops.Register(mux)
	wh := s.webhookHandler()
	mux.Handle("/webhooks/twilio", wh)
	mux.Handle("/webhooks/twilio/{event}", wh)
	s.handler = s.refuseAmbiguous(mux)

	ln := cfg.Listener
	if ln == nil {
		if ln, err = net.Listen("tcp", cfg.ListenAddr); err != nil {
			s.closeConn()
			return nil, fmt.Errorf("env var `LISTEN_ADDR`: %w", err)
		}
	}
	s.ln = framingListener{netutil.LimitListener(ln, cfg.MaxConnections)}
	if s.tracer, err = tracing.New(ctx, cfg.Tracing, tracingScope, log); err != nil {
		if cfg.Listener == nil {
			ln.Close()
		}
		s.closeConn()
		return nil, err
	}
	return s, nil
}

// Handler returns the HTTP handler: the webhook routes and the operational
// endpoints. It is safe for concurrent use.
func (s *Service) Handler() http.Handler { return s.handler }

// Addr is the address the service listens on.
func (s *Service) Addr() net.Addr { return s.ln.Addr() }

// Run serves until ctx ends, then shuts down in order: /readyz turns false,
// the HTTP server stops accepting and finishes in-flight requests (their
// publishes included), then the NATS connection is drained. It returns the
// joined errors of those steps.
func (s *Service) Run(ctx context.Context) error {
	if s.cfg.StreamsApply {
		go s.applyStreams(ctx)
	}
	go streams.WarnCapacity(ctx, s.js, s.cfg.Streams, s.cfg.Capacity, s.log)
	stop := context.AfterFunc(ctx, s.ops.SetDraining)
	defer stop()
	s.log.Info("ingester listening", zap.String("addr", s.ln.Addr().String()), zap.String("public_url", s.cfg.PublicURL))
	srv := httpserve.NewServer(s.handler)
	srv.ReadHeaderTimeout, srv.ReadTimeout = s.cfg.ReadHeaderTimeout, s.cfg.ReadTimeout
	srv.ErrorLog = zap.NewStdLog(s.log.Named("http"))
	srv.ConnContext = connContext
	err := httpserve.Serve(ctx, srv, s.ln, s.cfg.ShutdownGrace)
	// No handler runs any more: no publish waits for a reply.
	if rerr := s.requests.Stop(); rerr != nil {
		err = errors.Join(err, rerr)
	}
	if s.ownsConn {
		if derr := natsconn.Drain(s.nc, 10*time.Second); derr != nil {
			err = errors.Join(err, derr)
		}
	}
	err = errors.Join(err, s.tracer.Close()) // the last spans
	s.log.Info("ingester stopped")
	return err
}

// applyStreams retries streams.Apply until it succeeds or ctx ends, so an
// ingester started before NATS becomes ready once NATS is.
func (s *Service) applyStreams(ctx context.Context) {
	for wait := 250 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := streams.Apply(actx, s.js, s.cfg.Streams)
		cancel()
		if err == nil {
			s.streamsMu.Lock()
			s.streamsOK = true
			s.streamsMu.Unlock()
			return
		}
		s.log.Warn("apply streams", zap.Error(err))
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// ready: NATS connected and the streams present.
func (s *Service) ready(ctx context.Context) error {
	if !s.nc.IsConnected() {
		return fmt.Errorf("nats: %s", s.nc.Status())
	}
	return streams.Check(ctx, s.js)
}

func (s *Service) closeConn() {
	if s.ownsConn {
		s.nc.Close()
	}
}

package forwarder

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"
	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/zen-twilio/zen/pkg/pack"
	"github.com/zen-twilio/zen/pkg/streams"
	"github.com/zen-twilio/zen/pkg/worker"
)

// policy is one target's delivery policy: its `delivery` block in
// package.yaml over the FORWARDER_* defaults.
type policy struct {
	timeout     time.Duration
	concurrency int
	retry       worker.Backoff
	consumer    streams.ConsumerSettings // MaxDeliver = the target's attempts
	retryable   func(status int) bool
	rate        pack.RateLimit
	breaker     pack.Breaker
}

// resolvePolicy applies t's delivery block over cfg and checks what only
// the two together can tell (a timeout within the ack wait, slots within
// MaxAckPending), naming the field.
func resolvePolicy(t pack.Target, cfg Config) (policy, error) {
	d := t.Delivery
	p := policy{timeout: cfg.HTTPTimeout, concurrency: cfg.Concurrency, retry: cfg.Retry, consumer: cfg.Consumer,
		retryable: d.Retry.Retries, rate: d.RateLimit, breaker: d.Breaker}
	if d.Timeout > 0 {
		p.timeout = d.Timeout
	}
	if d.Concurrency > 0 {
		p.concurrency = d.Concurrency
	}
	if d.Retry.Initial > 0 {
		p.retry.Initial = d.Retry.Initial
	}
	if d.Retry.Max > 0 {
		p.retry.Max = d.Retry.Max
	}
	p.retry.Max = max(p.retry.Max, p.retry.Initial)
	p.retry.Linear = d.Retry.Strategy == "linear"
	if d.Retry.Attempts > 0 {
		p.consumer.MaxDeliver = d.Retry.Attempts
	}
	var errs []error
	where := fmt.Sprintf("target %q delivery", t.Name)
	if p.timeout >= p.consumer.AckWait {
		errs = append(errs, fmt.Errorf("%s.timeout %s must be shorter than FORWARDER_ACK_WAIT (%s)", where, p.timeout, p.consumer.AckWait))
	}
	if p.concurrency > p.consumer.MaxAckPending {
		errs = append(errs, fmt.Errorf("%s.concurrency %d must be <= FORWARDER_MAX_ACK_PENDING (%d)", where, p.concurrency, p.consumer.MaxAckPending))
	}
	return p, errors.Join(errs...)
}

// errStopping ends a wait at the gate when the forwarder stops.
var errStopping = errors.New("forwarder stopping")

// gate is what a POST to one target passes first: its circuit breaker,
// then its rate limit. Safe for concurrent use.
//
// While the breaker is open no POST goes out. The target's consumer is
// paused on the server (every replica stops receiving its events, which
// wait in ZEN_EVENTS and spend no attempt), and the deliveries already
// under way here wait at the gate (at most the target's concurrency, their
// ack wait kept alive by the worker's InProgress). After open_for one probe
// goes through (half-open): a success closes the breaker and resumes the
// consumer, a failure opens it again.
type gate struct {
	target  string
	limiter *rate.Limiter
	breaker *gobreaker.TwoStepCircuitBreaker[struct{}]
	poll    time.Duration
	// pause pauses the target's consumer until a time; resume resumes it.
	pause  func(until time.Time)
	resume func()
	// stopping is closed when the forwarder stops: waits end.
	stopping <-chan struct{}
	log      *zap.Logger
	state    prometheus.Gauge
	changes  *prometheus.CounterVec
	waited   prometheus.Counter
}

// newGate builds the gate of policy p; pause and resume act on the target's
// consumer.
func newGate(target string, p policy, m *metrics, pause func(time.Time), resume func(), stopping <-chan struct{}, log *zap.Logger) *gate {
	g := &gate{target: target, pause: pause, resume: resume, stopping: stopping, log: log,
		state: m.circuitState.WithLabelValues(target), changes: m.circuitChanges, waited: m.rateLimitWait.WithLabelValues(target)}
	g.state.Set(0)
	for _, to := range []string{"closed", "half-open", "open"} {
		m.circuitChanges.WithLabelValues(target, to)
	}
	if p.rate.PerSecond > 0 {
		g.limiter = rate.NewLimiter(rate.Limit(p.rate.PerSecond), p.rate.Burst)
	}
	if b := p.breaker; b.Enabled {
		g.poll = min(max(b.OpenFor/20, 10*time.Millisecond), time.Second)
		st := gobreaker.Settings{
			Name:    target,
			Timeout: b.OpenFor,
			ReadyToTrip: func(c gobreaker.Counts) bool {
				if b.ConsecutiveFailures > 0 && int(c.ConsecutiveFailures) >= b.ConsecutiveFailures {
					return true
				}
				return b.FailureRate > 0 && int(c.Requests) >= b.MinRequests &&
					float64(c.TotalFailures) >= b.FailureRate*float64(c.Requests)
			},
			OnStateChange: func(_ string, from, to gobreaker.State) { g.changed(from, to, b.OpenFor) },
		}
		if b.Window > 0 {
			st.Interval, st.BucketPeriod = b.Window, max(b.Window/10, time.Millisecond)
		}
		g.breaker = gobreaker.NewTwoStepCircuitBreaker[struct{}](st)
	}
	return g
}

// changed logs and counts a breaker transition and pauses or resumes the
// consumer. It runs under the breaker's lock: the consumer calls go to a
// goroutine of their own.
func (g *gate) changed(from, to gobreaker.State, openFor time.Duration) {
	g.state.Set(float64(to))
	g.changes.WithLabelValues(g.target, to.String()).Inc()
	g.log.Warn("circuit breaker "+to.String(), zap.String("from", from.String()), zap.Duration("open_for", openFor))
	switch to {
	case gobreaker.StateOpen:
		until := time.Now().Add(openFor)
		go g.pause(until)
	case gobreaker.StateClosed:
		go g.resume()
	}
}

// pass waits until a POST may go out and returns the function that reports
// its result (failed: it counts against the breaker). It returns
// errStopping, or ctx's error, if the wait ends first.
func (g *gate) pass(ctx context.Context) (done func(failed bool), err error) {
	done = func(bool) {}
	if g.breaker != nil {
		if done, err = g.admit(ctx); err != nil {
			return nil, err
		}
	}
	if g.limiter != nil {
		start := time.Now()
		if err := g.limiter.Wait(ctx); err != nil {
			done(false)
			return nil, err
		}
		g.waited.Add(time.Since(start).Seconds())
	}
	return done, nil
}

// admit waits for the breaker to let this POST through.
func (g *gate) admit(ctx context.Context) (func(failed bool), error) {
	for {
		report, err := g.breaker.Allow()
		if err == nil {
			return func(failed bool) {
				if failed {
					report(errFailed)
				} else {
					report(nil)
				}
			}, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-g.stopping:
			return nil, errStopping
		case <-time.After(g.poll):
		}
	}
}

var errFailed = errors.New("delivery failed")

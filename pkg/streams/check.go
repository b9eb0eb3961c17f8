package streams

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/zen-twilio/zen/pkg/envconf"
)

// CapacityFraction is the share of a limit the steady state may use before
// the start-up check warns (issue 22: 75%).
const CapacityFraction = 0.75

// Capacity is what the start-up check compares the configuration with.
type Capacity struct {
	// EventsPerSecond is the declared peak rate
	// (CAPACITY_EVENTS_PER_SECOND, default [DefaultEventsPerSecond], the rate
	// [DefaultConfig] is sized for; 0 turns the check off).
	EventsPerSecond int
	// Limits: NATS_MEMORY_LIMIT (the nats container's memory limit, which
	// the server cannot report) and NATS_MAX_STORE (max_file_store; when
	// unset, the account's JetStream storage limit the server reports).
	Limits Limits
}

// CapacityFromEnv reads CAPACITY_EVENTS_PER_SECOND, NATS_MEMORY_LIMIT and
// NATS_MAX_STORE (bytes). Problems are recorded on r.
func CapacityFromEnv(r *envconf.Reader) Capacity {
	c := Capacity{EventsPerSecond: r.Int("CAPACITY_EVENTS_PER_SECOND", DefaultEventsPerSecond)}
	c.Limits.MaxMemory = r.Int64("NATS_MEMORY_LIMIT", 0)
	c.Limits.MaxStore = r.Int64("NATS_MAX_STORE", 0)
	if c.EventsPerSecond < 0 {
		r.Fail("CAPACITY_EVENTS_PER_SECOND", "must be >= 0, got %d", c.EventsPerSecond)
	}
	return c
}

// CheckCapacity estimates cfg's steady state at the declared rate (with
// [MeasuredCosts]) and returns a warning per limit it exceeds at
// [CapacityFraction], each naming the variables to change. A storage limit
// not declared is asked of the server (its account info); a memory limit
// not declared adds a last line saying memory was not checked. It blocks for one
// JetStream API request; the error is that request's.
func CheckCapacity(ctx context.Context, js jetstream.JetStream, cfg Config, c Capacity) ([]string, error) {
	if c.EventsPerSecond == 0 {
		return nil, nil
	}
	if c.Limits.MaxStore == 0 {
		info, err := js.AccountInfo(ctx)
		if err != nil {
			return nil, fmt.Errorf("capacity check: %w", err)
		}
		if info.Limits.MaxStore > 0 {
			c.Limits.MaxStore = info.Limits.MaxStore
		}
	}
	f := Estimate(cfg, float64(c.EventsPerSecond), MeasuredCosts)
	w := CapacityWarnings(f, c.Limits, CapacityFraction)
	if c.Limits.MaxMemory == 0 {
		w = append(w, fmt.Sprintf("capacity: NATS_MEMORY_LIMIT is not set, so the steady-state NATS memory at %d events/s (%s) was not checked", c.EventsPerSecond, MiB(f.Memory)))
	}
	return w, nil
}

// checkAttempts bounds WarnCapacity's tries (1+2+4+8 s between them), so
// a service that started before NATS still checks once it is up.
const checkAttempts = 5

// WarnCapacity is a service's start-up check (issue 22): it runs
// CheckCapacity once NATS answers and logs each warning loudly, naming the
// variables to change. It never stops the service; when the check cannot
// run (NATS unreachable, a user without $JS.API.INFO), it says so.
func WarnCapacity(ctx context.Context, js jetstream.JetStream, cfg Config, c Capacity, log *zap.Logger) {
	var err error
	for i, wait := 0, time.Second; i < checkAttempts; i, wait = i+1, 2*wait {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		var w []string
		w, err = CheckCapacity(cctx, js, cfg, c)
		cancel()
		if err == nil {
			if c.Limits.MaxMemory == 0 && len(w) > 0 {
				// Not a misfit: local runs have no container limit.
				log.Info(w[len(w)-1])
				w = w[:len(w)-1]
			}
			for _, line := range w {
				log.Warn("CAPACITY: the configured streams do not fit the NATS limits at the declared rate",
					zap.Int("events_per_second", c.EventsPerSecond), zap.String("warning", line))
			}
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
	log.Warn("capacity check not done", zap.Error(err))
}

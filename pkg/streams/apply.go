package streams

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// Route is one target and the Zen event types routed to it, from which a
// forwarder consumer is declared.
type Route struct {
	Target     string
	EventTypes []string
}

// Apply creates or updates the four streams and the dedupe bucket. It is
// idempotent and safe to call from every replica at start-up: each call
// converges the objects to cfg. It returns the joined errors of every object
// it could not apply.
func Apply(ctx context.Context, js jetstream.JetStream, cfg Config) error {
	var errs []error
	for _, sc := range cfg.Streams() {
		if _, err := js.CreateOrUpdateStream(ctx, sc); err != nil {
			errs = append(errs, fmt.Errorf("apply stream %s: %w", sc.Name, err))
		}
	}
	if _, err := js.CreateOrUpdateKeyValue(ctx, cfg.DedupeBucket()); err != nil {
		errs = append(errs, fmt.Errorf("apply kv bucket %s: %w", BucketDedupe, err))
	}
	return errors.Join(errs...)
}

// ApplyConsumers creates or updates the transformer's consumer and one
// forwarder consumer per route.
func ApplyConsumers(ctx context.Context, js jetstream.JetStream, transformer, forwarder ConsumerSettings, routes []Route) error {
	var errs []error
	if _, err := js.CreateOrUpdateConsumer(ctx, StreamRaw, TransformerConsumer(transformer)); err != nil {
		errs = append(errs, fmt.Errorf("apply consumer %s: %w", ConsumerTransformer, err))
	}
	for _, r := range routes {
		cc, err := ForwarderConsumerConfig(r.Target, r.EventTypes, forwarder)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if _, err := js.CreateOrUpdateConsumer(ctx, StreamEvents, cc); err != nil {
			errs = append(errs, fmt.Errorf("apply consumer %s: %w", cc.Durable, err))
		}
	}
	return errors.Join(errs...)
}

// Check reports which of the four streams are missing; /readyz uses it.
func Check(ctx context.Context, js jetstream.JetStream) error {
	var errs []error
	for _, name := range []string{StreamRaw, StreamEvents, StreamDLQ, StreamAttempts} {
		if _, err := js.Stream(ctx, name); err != nil {
			errs = append(errs, fmt.Errorf("stream %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

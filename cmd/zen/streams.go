package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zen-twilio/zen/pkg/envconf"
	"github.com/zen-twilio/zen/pkg/natsconn"
	"github.com/zen-twilio/zen/pkg/pack"
	"github.com/zen-twilio/zen/pkg/streams"
)

const streamsUsage = `usage: zen streams apply [--nats-url URL] [--package DIR]

Creates or updates the JetStream streams, consumers and KV bucket. Stream
settings come from the same variables the services read (STREAM_REPLICAS,
RAW_MAX_AGE, …, TRANSFORMER_*, FORWARDER_*).`

func runStreams(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && isHelp(args[0]) {
		fmt.Fprintln(stdout, streamsUsage)
		return 0
	}
	if len(args) == 0 || args[0] != "apply" {
		fmt.Fprintln(stderr, streamsUsage)
		return 2
	}
	fs := flag.NewFlagSet("streams apply", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprintf(fs.Output(), "%s\n\nflags:\n", streamsUsage); fs.PrintDefaults() }
	r := envconf.New(lookupEnv)
	natsURL := fs.String("nats-url", r.String("NATS_URL", nats.DefaultURL), "NATS server URL(s) (env NATS_URL)")
	dir := fs.String("package", r.String("PACKAGE_DIR", "packages/transforms/twilio/v1"), "transform package directory, for the forwarder routes (env PACKAGE_DIR)")
	if code, ok := parseFlags(fs, args[1:], stdout, stderr); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "zen streams apply: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	cfg := streams.ConfigFromEnv(r)
	capacity := streams.CapacityFromEnv(r)
	tset := streams.ConsumerSettingsFromEnv(r, "TRANSFORMER_", streams.DefaultTransformerSettings())
	fset := streams.ConsumerSettingsFromEnv(r, "FORWARDER_", streams.DefaultForwarderSettings())
	// The Job runs this as the NATS user provisioner, which may read
	// replies only under its own inbox prefix (deploy/k8s/base/nats/auth.conf).
	opts := natsOptions(r, natsconn.InboxPrefix("provisioner"))
	if err := r.Err(); err != nil {
		fmt.Fprintln(stderr, "zen streams apply:", err)
		return 1
	}
	p, err := pack.LoadWith(*dir, lookupEnv, pack.Options{AllowMissingEnv: true})
	if err != nil {
		fmt.Fprintln(stderr, "zen streams apply: package:", err)
		return 1
	}
	nc, err := natsconn.Dial(*natsURL, opts...)
	if err != nil {
		fmt.Fprintln(stderr, "zen streams apply:", err)
		return 1
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		fmt.Fprintln(stderr, "zen streams apply:", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := streams.Apply(ctx, js, cfg); err != nil {
		fmt.Fprintln(stderr, "zen streams apply:", err)
		return 1
	}
	warnCapacity(ctx, js, cfg, capacity, stderr)
	routes := p.Routes()
	if err := streams.ApplyConsumers(ctx, js, tset, fset, routes); err != nil {
		fmt.Fprintln(stderr, "zen streams apply:", err)
		return 1
	}
	for _, sc := range cfg.Streams() {
		fmt.Fprintf(stdout, "stream   %-13s subjects %-16s replicas %d max-age %s\n", sc.Name, strings.Join(sc.Subjects, ","), sc.Replicas, sc.MaxAge)
	}
	fmt.Fprintf(stdout, "kv       %-13s ttl %s (%s: %s) replicas %d\n", streams.BucketDedupe, cfg.DedupeTTL, cfg.DedupeLongType, cfg.DedupeLongTTL, cfg.Replicas)
	fmt.Fprintf(stdout, "consumer %-13s on %s\n", streams.ConsumerTransformer, streams.StreamRaw)
	for _, rt := range routes {
		fmt.Fprintf(stdout, "consumer %-13s on %s, events %s\n", streams.ForwarderConsumer(rt.Target), streams.StreamEvents, strings.Join(rt.EventTypes, ","))
	}
	return 0
}

// warnCapacity prints, loudly, each limit the configured horizons exceed at
// the declared peak rate (issue 22). It never fails the apply: the objects
// are right, only their sizing is, and the operator decides.
func warnCapacity(ctx context.Context, js jetstream.JetStream, cfg streams.Config, c streams.Capacity, stderr io.Writer) {
	w, err := streams.CheckCapacity(ctx, js, cfg, c)
	if err != nil {
		fmt.Fprintln(stderr, "zen streams apply: WARNING:", err)
		return
	}
	for _, line := range w {
		fmt.Fprintf(stderr, "zen streams apply: WARNING at %d events/s (CAPACITY_EVENTS_PER_SECOND): %s\n", c.EventsPerSecond, line)
	}
}

// natsOptions reads the optional NATS credentials every component accepts:
// NATS_CREDS (a creds file) or NATS_USER and NATS_PASSWORD; and
// NATS_INBOX_PREFIX, whose default is inbox ("" keeps nats.go's _INBOX).
func natsOptions(r *envconf.Reader, inbox string) []nats.Option {
	opts := []nats.Option{nats.Name("zen-cli")}
	if p := natsconn.InboxPrefixFromEnv(r, inbox); p != "" {
		opts = append(opts, nats.CustomInboxPrefix(p))
	}
	if f := r.String("NATS_CREDS", ""); f != "" {
		opts = append(opts, nats.UserCredentials(f))
	}
	if u := r.String("NATS_USER", ""); u != "" {
		opts = append(opts, nats.UserInfo(u, r.Secret("NATS_PASSWORD").Reveal()))
	}
	return opts
}

package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zen-twilio/zen/pkg/envconf"
	"github.com/zen-twilio/zen/pkg/pack"
	"github.com/zen-twilio/zen/pkg/replay"
	"github.com/zen-twilio/zen/pkg/streams"
	"github.com/zen-twilio/zen/pkg/zen"
)

const replayUsage = `usage:
  zen replay dlq   [--stage transformer|forwarder] [--reason R | --target T] [--since 1h|RFC3339] [--filter SUBJECT] [--limit N] [--list]
  zen replay raw   (--since 1h|RFC3339 | --seq N[,M…]) [--event E] [--list]
  zen replay event <seq> [--force] [--target T]

dlq    republishes dead letters to the subject they failed on (back to the
       stage that failed) and deletes each from ZEN_DLQ once its copy is stored.
raw    runs stored requests of TWILIO_RAW through the transformer again
       (after a rule change). Events already delivered stay delivered: the
       dedupe keys decide what the warehouse sees.
event  redelivers one event of ZEN_EVENTS (by stream sequence). A target that
       already has it acks without a POST unless --force forgets its record.
--list shows what would be replayed and changes nothing.
Every replay is safe to repeat.`

func runReplay(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || !slices.Contains([]string{"dlq", "raw", "event"}, args[0]) {
		fmt.Fprintln(stderr, replayUsage)
		return 2
	}
	kind := args[0]
	fs := flag.NewFlagSet("replay "+kind, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, replayUsage); fs.PrintDefaults() }
	r := envconf.New(lookupEnv)
	natsURL := fs.String("nats-url", r.String("NATS_URL", nats.DefaultURL), "NATS server URL(s) (env NATS_URL)")
	stage := fs.String("stage", "", "dlq: only dead letters of this stage")
	reason := fs.String("reason", "", "dlq: only this reason (e.g. missing_required)")
	target := fs.String("target", "", "dlq: only this forwarder target; event: the target to redeliver to")
	since := fs.String("since", "", "only messages stored since a duration ago (1h) or an RFC 3339 time")
	filter := fs.String("filter", "", "dlq: a NATS subject filter on ZEN_DLQ (e.g. zen.dlq.transformer.>)")
	seqs := fs.String("seq", "", "raw: stream sequences, comma-separated")
	event := fs.String("event", "", "raw: only this Twilio event (e.g. message-status)")
	limit := fs.Int("limit", 0, "replay at most N messages")
	list := fs.Bool("list", false, "list only; change nothing")
	force := fs.Bool("force", false, "event: forget the target's delivery record so the event is POSTed again")
	dir := fs.String("package", r.String("PACKAGE_DIR", "packages/transforms/twilio/v1"), "event: transform package, for the targets (env PACKAGE_DIR)")
	// Flags may follow the positional <seq> of `replay event`.
	rest := args[1:]
	var positional []string
	for len(rest) > 0 {
		if err := fs.Parse(rest); err != nil {
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	opts := natsOptions(r)
	if err := r.Err(); err != nil {
		fmt.Fprintln(stderr, "zen replay:", err)
		return 1
	}
	var from time.Time
	if *since != "" {
		t, err := parseSince(*since, time.Now())
		if err != nil {
			fmt.Fprintln(stderr, "zen replay: --since:", err)
			return 2
		}
		from = t
	}
	nc, err := nats.Connect(*natsURL, opts...)
	if err != nil {
		fmt.Fprintln(stderr, "zen replay: connect:", err)
		return 1
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		fmt.Fprintln(stderr, "zen replay:", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()

	switch kind {
	case "dlq":
		if *reason != "" && *target != "" {
			fmt.Fprintln(stderr, "zen replay dlq: --reason and --target both name the last subject token; give one")
			return 2
		}
		f := replay.DLQFilter(*stage, *reason+*target, from)
		if *filter != "" {
			f.Subjects = []string{*filter}
		}
		f.Limit = *limit
		return replayDLQ(ctx, js, f, *list, stdout, stderr)
	case "raw":
		f := replay.Filter{Since: from, Limit: *limit}
		if *event != "" {
			f.Subjects = []string{streams.RawSubject(*event)}
		}
		if *seqs != "" {
			for _, s := range strings.Split(*seqs, ",") {
				n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
				if err != nil {
					fmt.Fprintf(stderr, "zen replay raw: --seq %q: not a sequence number\n", s)
					return 2
				}
				f.Seqs = append(f.Seqs, n)
			}
		}
		if *seqs == "" && *since == "" {
			fmt.Fprintln(stderr, "zen replay raw: give --since or --seq (replaying the whole stream is never a default)")
			return 2
		}
		return replayStored(ctx, js, streams.StreamRaw, f, *list, stdout, stderr)
	default:
		if len(positional) != 1 {
			fmt.Fprintln(stderr, "zen replay event: give one ZEN_EVENTS sequence number")
			return 2
		}
		seq, err := strconv.ParseUint(positional[0], 10, 64)
		if err != nil {
			fmt.Fprintf(stderr, "zen replay event: %q is not a sequence number\n", positional[0])
			return 2
		}
		return replayEvent(ctx, js, seq, *target, *dir, *force, *list, stdout, stderr)
	}
}

// parseSince reads "1h30m" (ago) or an RFC 3339 time.
func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither a duration (1h) nor an RFC 3339 time", s)
	}
	return t, nil
}

func replayDLQ(ctx context.Context, js jetstream.JetStream, f replay.Filter, list bool, stdout, stderr io.Writer) int {
	msgs, err := replay.List(ctx, js, streams.StreamDLQ, f)
	if err != nil {
		fmt.Fprintln(stderr, "zen replay dlq:", err)
		return 1
	}
	fmt.Fprintf(stdout, "%-6s %-20s %-11s %-26s %-30s %s\n", "SEQ", "FAILED", "STAGE", "REASON", "BACK TO", "ERROR")
	for _, m := range msgs {
		fmt.Fprintf(stdout, "%-6d %-20s %-11s %-26s %-30s %s\n", m.Seq, m.Time.UTC().Format("2006-01-02T15:04:05Z"), m.Stage(), m.Reason(),
			m.Header.Get(zen.HeaderOrigSubj), m.Error())
	}
	if list {
		fmt.Fprintf(stdout, "%d dead letters (listed only)\n", len(msgs))
		return 0
	}
	done := 0
	for _, m := range msgs {
		if err := replay.DeadLetter(ctx, js, m); err != nil {
			fmt.Fprintf(stderr, "zen replay dlq: %v\n", err)
			fmt.Fprintf(stdout, "replayed %d of %d dead letters before the error\n", done, len(msgs))
			return 1
		}
		done++
	}
	fmt.Fprintf(stdout, "replayed %d dead letters\n", done)
	return 0
}

func replayStored(ctx context.Context, js jetstream.JetStream, stream string, f replay.Filter, list bool, stdout, stderr io.Writer) int {
	msgs, err := replay.List(ctx, js, stream, f)
	if err != nil {
		fmt.Fprintln(stderr, "zen replay:", err)
		return 1
	}
	for _, m := range msgs {
		fmt.Fprintf(stdout, "%-6d %-20s %s\n", m.Seq, m.Time.UTC().Format("2006-01-02T15:04:05Z"), m.Subject)
	}
	if list {
		fmt.Fprintf(stdout, "%d messages (listed only)\n", len(msgs))
		return 0
	}
	nonce := strconv.FormatInt(time.Now().UnixNano(), 36)
	for i, m := range msgs {
		if err := replay.Republish(ctx, js, m, nonce); err != nil {
			fmt.Fprintf(stderr, "zen replay: %v (replayed %d of %d)\n", err, i, len(msgs))
			return 1
		}
	}
	fmt.Fprintf(stdout, "replayed %d messages of %s\n", len(msgs), stream)
	return 0
}

func replayEvent(ctx context.Context, js jetstream.JetStream, seq uint64, target, dir string, force, list bool, stdout, stderr io.Writer) int {
	msgs, err := replay.List(ctx, js, streams.StreamEvents, replay.Filter{Seqs: []uint64{seq}})
	if err != nil {
		fmt.Fprintln(stderr, "zen replay event:", err)
		return 1
	}
	m := msgs[0]
	key := m.Header.Get(zen.HeaderDedupeKey)
	if key == "" {
		key = m.Header.Get(zen.HeaderMsgID)
	}
	fmt.Fprintf(stdout, "event %d %s key %s\n", m.Seq, m.Subject, key)
	if list {
		return 0
	}
	if force {
		var targets []string
		if target != "" {
			targets = []string{target}
		} else {
			p, err := pack.LoadWith(dir, lookupEnv, pack.Options{AllowMissingEnv: true})
			if err != nil {
				fmt.Fprintln(stderr, "zen replay event: package:", err)
				return 1
			}
			for _, rt := range p.Routes() {
				if slices.Contains(rt.EventTypes, m.Header.Get(zen.HeaderEventType)) {
					targets = append(targets, rt.Target)
				}
			}
		}
		for _, t := range targets {
			if err := replay.Forget(ctx, js, t, key); err != nil {
				fmt.Fprintln(stderr, "zen replay event:", err)
				return 1
			}
			fmt.Fprintf(stdout, "forgot the delivery of %s to %s\n", key, t)
		}
	}
	if err := replay.Republish(ctx, js, m, strconv.FormatInt(time.Now().UnixNano(), 36)); err != nil {
		fmt.Fprintln(stderr, "zen replay event:", err)
		return 1
	}
	if force {
		fmt.Fprintln(stdout, "republished: it will be POSTed again")
	} else {
		fmt.Fprintln(stdout, "republished: a target that already has it acks it without a POST (use --force to send it again)")
	}
	return 0
}

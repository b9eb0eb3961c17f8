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
	"github.com/zen-twilio/zen/pkg/natsconn"
	"github.com/zen-twilio/zen/pkg/pack"
	"github.com/zen-twilio/zen/pkg/replay"
	"github.com/zen-twilio/zen/pkg/streams"
	"github.com/zen-twilio/zen/pkg/zen"
)

const replayUsage = `usage:
  zen replay dlq   [--stage transformer|forwarder] [--target T] [--reason R] [--event E]
                   [--since 1h|RFC3339] [--until 10m|RFC3339] [--filter SUBJECT] [--limit N] [--list | --dry-run]
  zen replay raw   (--since 1h|RFC3339 | --seq N[,M…]) [--until T] [--event E] [--limit N] [--list | --dry-run]
  zen replay event <seq> [--force] [--target T] [--package DIR] [--list]

dlq    republishes dead letters to the subject they failed on (back to the
       stage that failed) and deletes each from ZEN_DLQ once its copy is stored.
raw    runs stored requests of TWILIO_RAW through the transformer again
       (after a rule change). Events already delivered stay delivered: the
       dedupe keys decide what the warehouse sees.
event  redelivers one event of ZEN_EVENTS (by stream sequence). A target that
       already has it acks without a POST unless --force forgets its record.
--list shows everything that would be replayed, --dry-run its count and a
sample; neither changes anything. A flag that does not apply to the kind is
refused. Every replay is safe to repeat.`

// replayFlags are the flags each kind of replay reads; any other flag given
// is refused, so that a filter is never silently ignored. --nats-url applies
// to every kind.
var replayFlags = map[string][]string{
	"dlq":   {"stage", "target", "reason", "event", "since", "until", "filter", "limit", "list", "dry-run"},
	"raw":   {"since", "until", "seq", "event", "limit", "list", "dry-run"},
	"event": {"force", "target", "package", "list"},
}

// sampleSize is how many messages --dry-run shows.
const sampleSize = 5

func runReplay(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && isHelp(args[0]) {
		fmt.Fprintln(stdout, replayUsage)
		return 0
	}
	if len(args) == 0 || replayFlags[args[0]] == nil {
		fmt.Fprintln(stderr, replayUsage)
		return 2
	}
	kind := args[0]
	fs := flag.NewFlagSet("replay "+kind, flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprintf(fs.Output(), "%s\n\nflags:\n", replayUsage); fs.PrintDefaults() }
	r := envconf.New(lookupEnv)
	natsURL := fs.String("nats-url", r.String("NATS_URL", nats.DefaultURL), "NATS server URL(s) (env NATS_URL)")
	stage := fs.String("stage", "", "dlq: only dead letters of this stage")
	reason := fs.String("reason", "", "dlq: only this reason (e.g. missing_required, http_422)")
	target := fs.String("target", "", "dlq: only dead letters of this forwarder target; event: the target to redeliver to")
	since := fs.String("since", "", "only messages stored since a duration ago (1h) or an RFC 3339 time")
	until := fs.String("until", "", "only messages stored until a duration ago (10m) or an RFC 3339 time")
	filter := fs.String("filter", "", "dlq: a NATS subject filter on ZEN_DLQ (e.g. zen.dlq.transformer.>), instead of --stage/--target")
	seqs := fs.String("seq", "", "raw: stream sequences, comma-separated")
	event := fs.String("event", "", "only this event type (message.status) or Twilio event (message-status)")
	limit := fs.Int("limit", 0, "replay at most N messages")
	list := fs.Bool("list", false, "list what would be replayed; change nothing")
	dryRun := fs.Bool("dry-run", false, "print the count and a sample of what would be replayed; change nothing")
	force := fs.Bool("force", false, "event: forget the target's delivery record so the event is POSTed again")
	dir := fs.String("package", r.String("PACKAGE_DIR", "packages/transforms/twilio/v1"), "event: transform package, for the targets (env PACKAGE_DIR)")
	// Flags may follow the positional <seq> of `replay event`.
	rest := args[1:]
	var positional []string
	for len(rest) > 0 {
		if code, ok := parseFlags(fs, rest, stdout, stderr); !ok {
			return code
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	if bad := unusedFlags(fs, kind); len(bad) > 0 {
		fmt.Fprintf(stderr, "zen replay %s: %s does not apply to replay %s (it reads %s)\n",
			kind, strings.Join(bad, ", "), kind, "--"+strings.Join(replayFlags[kind], ", --"))
		return 2
	}
	if *list && *dryRun {
		fmt.Fprintf(stderr, "zen replay %s: give --list or --dry-run, not both\n", kind)
		return 2
	}
	opts := natsOptions(r, "") // operators replay as admin, which keeps _INBOX
	if err := r.Err(); err != nil {
		fmt.Fprintln(stderr, "zen replay:", err)
		return 1
	}
	now := time.Now()
	var from, to time.Time
	for _, t := range []struct {
		name, value string
		into        *time.Time
	}{{"since", *since, &from}, {"until", *until, &to}} {
		if t.value == "" {
			continue
		}
		v, err := parseSince(t.value, now)
		if err != nil {
			fmt.Fprintf(stderr, "zen replay: --%s: %v\n", t.name, err)
			return 2
		}
		*t.into = v
	}
	if !from.IsZero() && !to.IsZero() && to.Before(from) {
		fmt.Fprintln(stderr, "zen replay: --until is before --since: nothing can match")
		return 2
	}
	f := replay.Filter{Since: from, Until: to, Limit: *limit}
	switch kind {
	case "dlq":
		if *filter != "" && (*stage != "" || *target != "") {
			fmt.Fprintln(stderr, "zen replay dlq: --filter replaces --stage and --target; give one or the other")
			return 2
		}
		if *target != "" && *stage != "" && *stage != streams.StageForwarder {
			fmt.Fprintf(stderr, "zen replay dlq: --target names a forwarder target; the %s's dead letters have none\n", *stage)
			return 2
		}
		f.Subjects = []string{replay.DLQSubject(*stage, *target)}
		if *filter != "" {
			f.Subjects = []string{*filter}
		}
		f.Match = func(m replay.Message) bool {
			return (*reason == "" || m.Reason() == *reason) && (*event == "" || replay.HasEventType(m, *event))
		}
	case "raw":
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
			if *event != "" {
				f.Match = func(m replay.Message) bool { return replay.HasEventType(m, *event) }
			}
		}
		if *seqs == "" && *since == "" {
			fmt.Fprintln(stderr, "zen replay raw: give --since or --seq (replaying the whole stream is never a default)")
			return 2
		}
	default:
		if len(positional) != 1 {
			fmt.Fprintln(stderr, "zen replay event: give one ZEN_EVENTS sequence number")
			return 2
		}
	}
	if kind != "event" && len(positional) > 0 {
		fmt.Fprintf(stderr, "zen replay %s: unexpected argument %q\n", kind, positional[0])
		return 2
	}
	var seq uint64
	if kind == "event" {
		n, err := strconv.ParseUint(positional[0], 10, 64)
		if err != nil {
			fmt.Fprintf(stderr, "zen replay event: %q is not a sequence number\n", positional[0])
			return 2
		}
		seq = n
	}

	nc, err := natsconn.Dial(*natsURL, opts...)
	if err != nil {
		fmt.Fprintln(stderr, "zen replay:", err)
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
	show := showAll
	switch {
	case *list:
		show = listOnly
	case *dryRun:
		show = sampleOnly
	}
	switch kind {
	case "dlq":
		return replayDLQ(ctx, js, f, show, stdout, stderr)
	case "raw":
		scfg := streams.ConfigFromEnv(r)
		if err := r.Err(); err != nil {
			fmt.Fprintln(stderr, "zen replay raw:", err)
			return 2
		}
		return replayStored(ctx, js, streams.StreamRaw, f, show, scfg, stdout, stderr)
	default:
		return replayEvent(ctx, js, seq, *target, *dir, *force, *list, stdout, stderr)
	}
}

// unusedFlags returns the flags given on the command line that kind does
// not read, as "--name".
func unusedFlags(fs *flag.FlagSet, kind string) []string {
	var bad []string
	fs.Visit(func(f *flag.Flag) {
		if f.Name != "nats-url" && !slices.Contains(replayFlags[kind], f.Name) {
			bad = append(bad, "--"+f.Name)
		}
	})
	return bad
}

// showMode is what a replay prints before (or instead of) sending.
type showMode int

const (
	showAll    showMode = iota // every message, then replay
	listOnly                   // every message, nothing sent
	sampleOnly                 // the count and a sample, nothing sent
)

// shown returns the messages to print for mode.
func (s showMode) shown(msgs []replay.Message) []replay.Message {
	if s == sampleOnly && len(msgs) > sampleSize {
		return msgs[:sampleSize]
	}
	return msgs
}

// printedOnly prints the closing line of a replay that sends nothing and
// says whether it was one.
func (s showMode) printedOnly(stdout io.Writer, n int, what string) bool {
	switch s {
	case listOnly:
		fmt.Fprintf(stdout, "%d %s (listed only)\n", n, what)
	case sampleOnly:
		fmt.Fprintf(stdout, "dry run: %d %s would be replayed (%d shown); nothing was sent\n", n, what, min(n, sampleSize))
	default:
		return false
	}
	return true
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

func replayDLQ(ctx context.Context, js jetstream.JetStream, f replay.Filter, show showMode, stdout, stderr io.Writer) int {
	msgs, err := replay.List(ctx, js, streams.StreamDLQ, f)
	if err != nil {
		fmt.Fprintln(stderr, "zen replay dlq:", err)
		return 1
	}
	fmt.Fprintf(stdout, "%-6s %-20s %-11s %-18s %-16s %-48s %s\n", "SEQ", "FAILED", "STAGE", "REASON", "EVENT", "KEY", "ERROR")
	for _, m := range show.shown(msgs) {
		fmt.Fprintf(stdout, "%-6d %-20s %-11s %-18s %-16s %-48s %s\n", m.Seq, m.Time.UTC().Format("2006-01-02T15:04:05Z"), m.Stage(), m.Reason(),
			eventOf(m), keyOf(m), m.Error())
	}
	if show.printedOnly(stdout, len(msgs), "dead letters") {
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

// eventOf is a stored message's event type, or its Twilio event when it
// has none yet (a raw request).
func eventOf(m replay.Message) string {
	if e := m.Header.Get(zen.HeaderEventType); e != "" {
		return e
	}
	subj := m.Header.Get(zen.HeaderOrigSubj)
	if subj == "" {
		subj = m.Subject
	}
	return strings.TrimPrefix(subj, streams.RawRoot+".")
}

// keyOf is an event's dedupe key, or a raw request's idempotency token.
func keyOf(m replay.Message) string {
	for _, h := range []string{zen.HeaderDedupeKey, zen.HeaderIdempotencyToken} {
		if v := m.Header.Get(h); v != "" {
			return v
		}
	}
	return "-"
}

func replayStored(ctx context.Context, js jetstream.JetStream, stream string, f replay.Filter, show showMode, cfg streams.Config, stdout, stderr io.Writer) int {
	msgs, err := replay.List(ctx, js, stream, f)
	if err != nil {
		fmt.Fprintln(stderr, "zen replay:", err)
		return 1
	}
	for _, m := range show.shown(msgs) {
		fmt.Fprintf(stdout, "%-6d %-20s %-28s %s\n", m.Seq, m.Time.UTC().Format("2006-01-02T15:04:05Z"), m.Subject, keyOf(m))
	}
	printDedupeLimit(stdout, cfg, msgs, time.Now())
	if show.printedOnly(stdout, len(msgs), "messages") {
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

// printDedupeLimit states the exactly-once limit of a raw replay (issue 22,
// docs/capacity.md window 2): zen_dedupe remembers a delivery for its
// event type's TTL only, so an event first delivered longer ago is POSTed
// again, with the same Idempotency-Key. A request stored longer ago than the
// TTL is counted: its events were delivered after it was stored, so the
// count is an upper bound.
func printDedupeLimit(w io.Writer, cfg streams.Config, msgs []replay.Message, now time.Time) {
	older := 0
	for _, m := range msgs {
		// A raw subject names the Twilio event (verification-status); only
		// equality with DedupeLongType matters here.
		if now.Sub(m.Time) > cfg.DedupeTTLFor(strings.ReplaceAll(eventOf(m), "-", ".")) {
			older++
		}
	}
	fmt.Fprintf(w, "exactly-once limit: zen_dedupe remembers a delivery for DEDUPE_TTL=%s (%s: DEDUPE_LONG_TTL=%s); "+
		"%d of these %d requests were stored longer ago, and those of their events already delivered are POSTed again (same Idempotency-Key)\n",
		cfg.DedupeTTL, cfg.DedupeLongType, cfg.DedupeLongTTL, older, len(msgs))
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

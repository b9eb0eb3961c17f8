// Command capacity measures what the pipeline's state costs a real
// nats-server process (bin/nats-server from `make tools`): resident memory
// per zen_dedupe key, per duplicate-window entry and per stored message of
// each stream, and store bytes per message, each at two sizes so that
// linearity is measured, not assumed. It then projects the steady-state
// memory and disk per replica for 100, 1,000 and 5,000 events/s and writes
// the tables into -out (bench/results.md). Run it with `make capacity`; it
// is not part of `make test`.
//
// Every measurement starts a fresh server, creates the object with the
// pipeline's own configuration (pkg/streams), samples RSS, publishes N
// entries shaped like the pipeline's, waits -settle idle and samples again.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zen-twilio/zen/pkg/streams"
)

// scenario is one kind of entry: the object it lives in and how the i-th
// entry is published.
type scenario struct {
	name   string
	object func(ctx context.Context, js jetstream.JetStream) error
	msg    func(i int) *nats.Msg
}

// result is one scenario measured at one size.
type result struct {
	name      string
	n         int
	rssBefore int64
	rssAfter  int64
	storeB    uint64
	took      time.Duration
}

func (r result) memPerEntry() float64  { return float64(r.rssAfter-r.rssBefore) / float64(r.n) }
func (r result) diskPerEntry() float64 { return float64(r.storeB) / float64(r.n) }

func main() {
	server := flag.String("nats-server", "bin/nats-server", "nats-server binary")
	sizesFlag := flag.String("sizes", "1000000,2000000", "entries per measurement (two sizes >= 1M)")
	settle := flag.Duration("settle", 20*time.Second, "idle time before the second RSS sample")
	only := flag.String("only", "", "comma-separated scenario names (default all)")
	out := flag.String("out", "bench/results.md", "markdown file the tables are appended to")
	prodPath := flag.String("shipped", "deploy/k8s/base/kustomization.yaml", "kustomization whose zen-streams and zen-capacity ConfigMaps are projected")
	flag.Parse()
	prod, err := loadShipped(*prodPath)
	if err != nil {
		log.Fatal(err)
	}
	sizes, err := parseSizes(*sizesFlag)
	if err != nil {
		log.Fatal(err)
	}
	var results []result
	for _, sc := range pick(scenarios(), *only) {
		for _, n := range sizes {
			r, err := measure(*server, sc, n, *settle)
			if err != nil {
				log.Fatalf("%s at %d: %v", sc.name, n, err)
			}
			log.Printf("%s n=%d: %.1f B/entry memory, %.1f B/entry disk (%s)", r.name, n, r.memPerEntry(), r.diskPerEntry(), r.took)
			results = append(results, r)
		}
	}
	report := render(results, sizes, prod)
	fmt.Print(report)
	if err := appendFile(*out, report); err != nil {
		log.Fatal(err)
	}
}

func parseSizes(s string) ([]int, error) {
	var sizes []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("-sizes: %w", err)
		}
		sizes = append(sizes, n)
	}
	return sizes, nil
}

func pick(all []scenario, only string) []scenario {
	if only == "" {
		return all
	}
	var out []scenario
	for _, sc := range all {
		if strings.Contains(","+only+",", ","+sc.name+",") {
			out = append(out, sc)
		}
	}
	return out
}

const target = "communications-warehouse"

// scenarios are the pipeline's entries, shaped as the services write them.
func scenarios() []scenario {
	// The shipped objects without their byte bounds, so every entry stays.
	cfg := streams.DefaultConfig()
	cfg.RawMaxBytes, cfg.EventsMaxBytes, cfg.AttemptsMaxBytes, cfg.DedupeMaxBytes = 0, 0, 0, 0
	// A duplicate window longer than the run keeps every Nats-Msg-Id; the
	// other scenarios forget theirs within a second, so a stored message
	// is measured with its Nats-Msg-Id bytes but without the window's cost.
	windowed, plain := cfg, cfg
	windowed.RawDuplicateWindow, windowed.EventsDuplicateWindow = time.Hour, time.Hour
	plain.RawDuplicateWindow, plain.EventsDuplicateWindow = time.Second, time.Second
	raw, event := realShapes()
	attempt := payload(260)
	return []scenario{
		{"dedupe_key", kvBucket(cfg), func(i int) *nats.Msg {
			return kvPut(streams.KVKey(target, longKey(i)), i)
		}},
		{"dedupe_key_hashed", kvBucket(cfg), func(i int) *nats.Msg {
			return kvPut(streams.KVKey(target, hashedKey(i)), i)
		}},
		{"raw_message", stream(plain.RawStream()), func(i int) *nats.Msg {
			return raw.copy(fmt.Sprintf("%064x", i))
		}},
		{"raw_message_in_duplicate_window", stream(windowed.RawStream()), func(i int) *nats.Msg {
			return raw.copy(fmt.Sprintf("%064x", i))
		}},
		{"event_message", stream(plain.EventsStream()), func(i int) *nats.Msg {
			return event.copy(longKey(i))
		}},
		{"attempt_record", stream(cfg.AttemptsStream()), func(i int) *nats.Msg {
			return streamMsg(streams.AttemptsSubject(target), attempt, "")
		}},
	}
}

// longKey is a dedupe key of DESIGN.md's shape.
func longKey(i int) string { return fmt.Sprintf("tw-SM%032x.message.status.delivered", i) }

// hashedKey is the option "a hashed key": 16 bytes of SHA-256, base64url.
func hashedKey(i int) string {
	s := sha256.Sum256([]byte(longKey(i)))
	return base64.RawURLEncoding.EncodeToString(s[:16])
}

func payload(n int) []byte { return []byte(strings.Repeat("x", n)) }

func kvBucket(cfg streams.Config) func(ctx context.Context, js jetstream.JetStream) error {
	return func(ctx context.Context, js jetstream.JetStream) error {
		_, err := js.CreateOrUpdateKeyValue(ctx, cfg.DedupeBucket())
		return err
	}
}

func stream(sc jetstream.StreamConfig) func(ctx context.Context, js jetstream.JetStream) error {
	return func(ctx context.Context, js jetstream.JetStream) error {
		_, err := js.CreateOrUpdateStream(ctx, sc)
		return err
	}
}

// kvPut is the forwarder's entry: "delivered:<seq>:<unix ms>" with its
// per-key TTL (the server tracks each in a timer wheel).
func kvPut(key string, i int) *nats.Msg {
	m := nats.NewMsg("$KV." + streams.BucketDedupe + "." + key)
	m.Header.Set(jetstream.MsgTTLHeader, streams.DefaultConfig().DedupeTTL.String())
	m.Data = fmt.Appendf(nil, "delivered:%d:%d", i, time.Now().UnixMilli())
	return m
}

// streamMsg carries headers of the pipeline's size (evidence headers).
func streamMsg(subject string, data []byte, msgID string) *nats.Msg {
	m := nats.NewMsg(subject)
	m.Data = data
	m.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	m.Header.Set("Zen-Request-Id", "0123456789abcdef0123456789abcdef")
	m.Header.Set("Zen-Received-At", "2026-12-05T12:00:00Z")
	if msgID != "" {
		m.Header.Set(nats.MsgIdHdr, msgID)
	}
	return m
}

// measure runs one scenario at one size on a fresh server.
func measure(bin string, sc scenario, n int, settle time.Duration) (result, error) {
	dir, err := os.MkdirTemp("", "zen-capacity-")
	if err != nil {
		return result{}, err
	}
	defer os.RemoveAll(dir)
	srv, url, err := startServer(bin, dir)
	if err != nil {
		return result{}, err
	}
	defer func() { _ = srv.Process.Kill(); _ = srv.Wait() }()
	nc, err := nats.Connect(url)
	if err != nil {
		return result{}, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		return result{}, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	if err := sc.object(ctx, js); err != nil {
		return result{}, err
	}
	time.Sleep(3 * time.Second)
	r := result{name: sc.name, n: n}
	if r.rssBefore, err = rss(srv.Process.Pid); err != nil {
		return result{}, err
	}
	start := time.Now()
	if err := publishAll(ctx, js, sc, n); err != nil {
		return result{}, err
	}
	r.took = time.Since(start)
	time.Sleep(settle)
	if r.rssAfter, err = rss(srv.Process.Pid); err != nil {
		return result{}, err
	}
	var msgs uint64
	r.storeB, msgs, err = storeBytes(ctx, js)
	if err == nil && msgs != uint64(n) {
		err = fmt.Errorf("the server holds %d entries, want %d", msgs, n)
	}
	return r, err
}

// publishAll publishes n entries asynchronously and waits for every ack.
func publishAll(ctx context.Context, js jetstream.JetStream, sc scenario, n int) error {
	for i := range n {
		if err := publishOne(ctx, js, sc.msg(i)); err != nil {
			return fmt.Errorf("publish %d: %w", i, err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// publishOne publishes m, waiting for the outstanding acks when the
// client's window is full.
func publishOne(ctx context.Context, js jetstream.JetStream, m *nats.Msg) error {
	for {
		_, err := js.PublishMsgAsync(m)
		if !errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
			return err
		}
		select {
		case <-js.PublishAsyncComplete():
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// storeBytes sums the bytes and messages of every stream.
func storeBytes(ctx context.Context, js jetstream.JetStream) (bytes, msgs uint64, err error) {
	names := js.StreamNames(ctx)
	for name := range names.Name() {
		s, err := js.Stream(ctx, name)
		if err != nil {
			return 0, 0, err
		}
		bytes += s.CachedInfo().State.Bytes
		msgs += s.CachedInfo().State.Msgs
	}
	return bytes, msgs, names.Err()
}

func startServer(bin, dir string) (*exec.Cmd, string, error) {
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	cmd := exec.Command(bin, "-js", "-sd", dir, "-a", "127.0.0.1", "-p", strconv.Itoa(port))
	cmd.Stdout, cmd.Stderr = nil, nil
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	for range 100 {
		if nc, err := nats.Connect(url); err == nil {
			nc.Close()
			return cmd, url, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	return nil, "", fmt.Errorf("nats-server did not start on %s", url)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// rss reads a process's resident memory from /proc.
func rss(pid int) (int64, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

func appendFile(path, s string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(s); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

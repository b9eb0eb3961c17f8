package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/zen-twilio/zen/pkg/gctune"
	"github.com/zen-twilio/zen/pkg/httpserve"
	"github.com/zen-twilio/zen/pkg/logging"
	"github.com/zen-twilio/zen/pkg/natsconn"
	"github.com/zen-twilio/zen/pkg/natsembed"
	"github.com/zen-twilio/zen/pkg/pack"
	"github.com/zen-twilio/zen/pkg/streams"
	"github.com/zen-twilio/zen/services/forwarder"
	"github.com/zen-twilio/zen/services/ingester"
	"github.com/zen-twilio/zen/services/transformer"
)

// The local defaults of `zen dev`: obviously not secrets, printed in the
// banner, replaced by the variables of the same name when they are set.
const (
	devAuthToken      = "zen-dev-auth-token-not-a-secret"
	devWarehouseToken = "zen-dev-warehouse-token-not-a-secret"
)

// devFlags are the addresses of `zen dev`; port 0 picks a free port (tests).
type devFlags struct {
	dir, http, sink, transformerOps, forwarderOps, pkg string
	natsPort                                           int
}

func runDev(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), `usage: zen dev [flags]

Runs the whole pipeline in one process: an embedded NATS server with
JetStream (data in --dir), the ingester, the transformer, the forwarder and a
local warehouse sink that appends every event to <dir>/warehouse.jsonl.
The services' variables (TWILIO_AUTH_TOKEN, PUBLIC_URL, COMMS_WAREHOUSE_URL,
COMMS_WAREHOUSE_TOKEN, LOG_LEVEL, TRANSFORMER_*, FORWARDER_*, …) are honoured.

flags:`)
		fs.PrintDefaults()
	}
	var f devFlags
	fs.StringVar(&f.dir, "dir", ".zen", "data directory (NATS store, warehouse.jsonl)")
	fs.StringVar(&f.http, "http", "127.0.0.1:8080", "ingester address")
	fs.IntVar(&f.natsPort, "nats-port", 4222, "NATS client port on 127.0.0.1 (-1: any free port)")
	fs.StringVar(&f.sink, "sink", "127.0.0.1:9090", "local warehouse sink address")
	fs.StringVar(&f.transformerOps, "transformer-ops", "127.0.0.1:8081", "transformer /healthz /readyz /metrics")
	fs.StringVar(&f.forwarderOps, "forwarder-ops", "127.0.0.1:8082", "forwarder /healthz /readyz /metrics")
	fs.StringVar(&f.pkg, "package", "", "transform package directory (default $PACKAGE_DIR or packages/transforms/twilio/v1)")
	if code, ok := parseFlags(fs, args, stdout, stderr); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "zen dev: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if err := dev(ctx, f, stdout, stderr); err != nil {
		fmt.Fprintln(stderr, "zen dev:", err)
		return 1
	}
	return 0
}

func dev(ctx context.Context, f devFlags, stdout, stderr io.Writer) error {
	gctune.Apply()
	if err := os.MkdirAll(f.dir, 0o755); err != nil {
		return err
	}
	level, _ := lookupEnv("LOG_LEVEL")
	if level == "" {
		level = "info"
	}
	log, err := logging.New(level, true)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()

	// The listeners first, so PUBLIC_URL and the sink URL name real ports.
	httpLn, err := net.Listen("tcp", f.http)
	if err != nil {
		return fmt.Errorf("ingester address: %w", err)
	}
	defer httpLn.Close()
	sinkLn, err := net.Listen("tcp", f.sink)
	if err != nil {
		return fmt.Errorf("sink address: %w", err)
	}
	defer sinkLn.Close()

	defaults := map[string]string{
		"TWILIO_AUTH_TOKEN":     devAuthToken,
		"PUBLIC_URL":            "http://" + httpLn.Addr().String(),
		"COMMS_WAREHOUSE_URL":   "http://" + sinkLn.Addr().String() + "/events",
		"COMMS_WAREHOUSE_TOKEN": devWarehouseToken,
	}
	if f.pkg != "" {
		defaults["PACKAGE_DIR"] = f.pkg
		if _, set := lookupEnv("PACKAGE_DIR"); set {
			return errors.New("both --package and PACKAGE_DIR are set")
		}
	}
	lookup := func(k string) (string, bool) {
		if v, ok := lookupEnv(k); ok {
			return v, true
		}
		v, ok := defaults[k]
		return v, ok
	}
	env := func(k string) string { v, _ := lookup(k); return v }

	ns, err := natsembed.Start(natsembed.Options{Port: f.natsPort, StoreDir: filepath.Join(f.dir, "nats")})
	if err != nil {
		return err
	}
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	natsURL := ns.ClientURL()

	// One connection per stage, as in production, each with its inbox
	// prefix (the local server has no users, so nothing enforces it here).
	conns := map[string]*nats.Conn{}
	defer func() {
		for _, nc := range conns {
			_ = nc.Drain()
		}
	}()
	for _, name := range []string{"ingester", "transformer", "forwarder", "dev"} {
		nc, err := nats.Connect(natsURL, nats.Name("zen-dev-"+name), nats.MaxReconnects(-1),
			nats.CustomInboxPrefix(natsconn.InboxPrefix(name)))
		if err != nil {
			return err
		}
		conns[name] = nc
	}

	icfg, err := ingester.ConfigFromEnv(lookup)
	if err != nil {
		return err
	}
	icfg.Conn, icfg.Listener, icfg.NATS.URL = conns["ingester"], httpLn, natsURL
	tcfg, err := transformer.ConfigFromEnv(lookup)
	if err != nil {
		return err
	}
	tcfg.Conn, tcfg.ListenAddr, tcfg.NATS.URL = conns["transformer"], f.transformerOps, natsURL
	fcfg, err := forwarder.ConfigFromEnv(lookup)
	if err != nil {
		return err
	}
	fcfg.Conn, fcfg.ListenAddr, fcfg.NATS.URL, fcfg.Version = conns["forwarder"], f.forwarderOps, natsURL, version

	// Streams and consumers exist before any stage starts (a second run
	// finds them, with their messages, in <dir>/nats).
	if icfg.PackageDir == "" {
		icfg.PackageDir = tcfg.PackageDir // the ingester takes its responses from the same package
	}
	p, err := pack.Load(tcfg.PackageDir, lookup)
	if err != nil {
		return err
	}
	js, err := jetstream.New(conns["dev"])
	if err != nil {
		return err
	}
	actx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = streams.Apply(actx, js, icfg.Streams)
	if err == nil {
		err = streams.ApplyConsumers(actx, js, tcfg.Consumer, fcfg.Consumer, p.Routes())
	}
	cancel()
	if err != nil {
		return err
	}

	sinkFile := filepath.Join(f.dir, "warehouse.jsonl")
	sink, err := newSink(sinkFile, env("COMMS_WAREHOUSE_TOKEN"), log.Named("sink"))
	if err != nil {
		return err
	}
	defer sink.Close()

	ing, err := ingester.New(ctx, icfg, log.Named("ingester"))
	if err != nil {
		return err
	}
	tr, err := transformer.New(ctx, tcfg, log.Named("transformer"))
	if err != nil {
		return err
	}
	fw, err := forwarder.New(ctx, fcfg, log.Named("forwarder"))
	if err != nil {
		return err
	}

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	// The sink outlives the stages, so the forwarder's last POSTs land.
	sinkCtx, stopSink := context.WithCancel(context.Background())
	sinkDone := make(chan error, 1)
	go func() { sinkDone <- httpserve.Serve(sinkCtx, httpserve.NewServer(sink), sinkLn, 2*time.Second) }()
	for name, run := range map[string]func(context.Context) error{
		"ingester": ing.Run, "transformer": tr.Run, "forwarder": fw.Run,
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(runCtx); err != nil {
				errs <- fmt.Errorf("%s: %w", name, err)
				stop() // one stage failing stops the others
			}
		}()
	}

	printBanner(stdout, bannerInfo{
		natsURL: natsURL, publicURL: icfg.PublicURL, ingester: "http://" + httpLn.Addr().String(),
		sinkURL: env("COMMS_WAREHOUSE_URL"), sinkFile: sinkFile, usingSink: env("COMMS_WAREHOUSE_URL") == defaults["COMMS_WAREHOUSE_URL"],
		token: env("TWILIO_AUTH_TOKEN"), tokenIsDev: env("TWILIO_AUTH_TOKEN") == devAuthToken,
		transformerOps: addrOf(tr.Addr()), forwarderOps: addrOf(fw.Addr()), dir: f.dir,
	})
	<-runCtx.Done()
	fmt.Fprintln(stdout, "zen dev: stopping (in-flight requests and messages finish first)…")
	wg.Wait()
	stopSink()
	if err := <-sinkDone; err != nil {
		// Only the forwarder's idle keep-alive connections are left: not a failure.
		log.Debug("sink shutdown", zap.Error(err))
	}
	close(errs)
	var all error
	for err := range errs {
		all = errors.Join(all, err)
	}
	if all == nil {
		fmt.Fprintln(stdout, "zen dev: stopped; the streams are kept in", filepath.Join(f.dir, "nats"))
	}
	return all
}

func addrOf(a net.Addr) string {
	if a == nil {
		return "off"
	}
	return "http://" + a.String()
}

type bannerInfo struct {
	natsURL, publicURL, ingester, sinkURL, sinkFile, token, transformerOps, forwarderOps, dir string
	usingSink, tokenIsDev                                                                     bool
}

// printBanner tells a new user everything they need, including a line to
// paste. Tests read the "webhooks", "nats", "auth token" lines.
func printBanner(w io.Writer, b bannerInfo) {
	var buf bytes.Buffer
	p := func(format string, args ...any) { fmt.Fprintf(&buf, format+"\n", args...) }
	p("")
	p("zen dev: the pipeline is running (zen %s)", version)
	p("  webhooks      %s/webhooks/twilio  (and /webhooks/twilio/<event>)", b.publicURL)
	if b.publicURL != b.ingester {
		p("  listening on  %s", b.ingester)
	}
	p("  nats          %s  (streams in %s/nats; try: bin/nats stream ls)", b.natsURL, b.dir)
	if b.usingSink {
		p("  warehouse     %s  -> %s", b.sinkURL, b.sinkFile)
	} else {
		p("  warehouse     %s  (COMMS_WAREHOUSE_URL; the local sink is idle)", b.sinkURL)
	}
	if b.tokenIsDev {
		p("  auth token    %s  (dev default; set TWILIO_AUTH_TOKEN for a real account)", b.token)
	} else {
		p("  auth token    from TWILIO_AUTH_TOKEN")
	}
	p("  ops           ingester %s/metrics, transformer %s/metrics, forwarder %s/metrics", b.ingester, b.transformerOps, b.forwarderOps)
	p("")
	p("send a signed test webhook:")
	if b.tokenIsDev {
		p("  go run ./cmd/zen send --url %s/webhooks/twilio fixtures/twilio/incoming_sms.json", b.publicURL)
	} else {
		p("  go run ./cmd/zen send --url %s/webhooks/twilio fixtures/twilio/incoming_sms.json  # signs with $TWILIO_AUTH_TOKEN", b.publicURL)
	}
	p("then: tail -f %s", b.sinkFile)
	p("Ctrl-C stops everything gracefully; the next run resumes with the stored streams.")
	p("")
	_, _ = w.Write(buf.Bytes())
}

// sink is the local warehouse: it checks the bearer token and appends each
// event as one JSON line.
type sink struct {
	mu    sync.Mutex
	f     *os.File
	token string
	log   *zap.Logger
}

func newSink(path, token string, log *zap.Logger) (*sink, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	return &sink{f: f, token: token, log: log}, nil
}

func (s *sink) Close() error { return s.f.Close() }

func (s *sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+s.token {
		s.log.Warn("rejected a request with a wrong bearer token")
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 4<<20))
	if err != nil {
		http.Error(w, "read error", http.StatusBadRequest)
		return
	}
	var line bytes.Buffer
	if err := json.Compact(&line, body); err != nil {
		http.Error(w, "body is not JSON", http.StatusBadRequest)
		return
	}
	line.WriteByte('\n')
	s.mu.Lock()
	_, err = s.f.Write(line.Bytes())
	s.mu.Unlock()
	if err != nil {
		s.log.Error("write warehouse file", zap.Error(err))
		http.Error(w, "write failed", http.StatusInternalServerError)
		return
	}
	s.log.Info("event received", zap.String("idempotency_key", r.Header.Get("Idempotency-Key")))
	w.WriteHeader(http.StatusOK)
}

package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
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
	stopWithParent                                     bool
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
	fs.BoolVar(&f.stopWithParent, "stop-with-parent", false, "also stop when the parent process gets SIGINT or exits (make run: make does not pass SIGINT on; Linux)")
	if code, ok := parseFlags(fs, args, stdout, stderr); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "zen dev: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if f.stopWithParent {
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		go watchParentInterrupt(ctx, cancel, parentWatchEvery)
	}
	if err := dev(ctx, f, stdout, stderr); err != nil {
		for line := range strings.SplitSeq(err.Error(), "\n") {
			fmt.Fprintln(stderr, "zen dev:", line)
		}
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

	// The listeners first, so PUBLIC_URL and the sink URL name real ports,
	// and a taken port is said at once, with the flag that moves it.
	httpLn, sinkLn, err := f.listen()
	if err != nil {
		return err
	}
	defer httpLn.Close()
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
	reportDone := make(chan struct{})
	go func() { sink.report(sinkCtx, sinkReportEvery); close(reportDone) }()
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
	<-reportDone
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

// listen binds the ingester's and the sink's addresses and checks that the
// NATS port and the ops addresses are free (the server and the stages bind
// those themselves, a moment later). Every taken address is reported, each
// with its flag: "address in use: 127.0.0.1:4222 (--nats-port …)".
func (f devFlags) listen() (httpLn, sinkLn net.Listener, err error) {
	httpLn, herr := listenFlag(f.http, "--http")
	sinkLn, serr := listenFlag(f.sink, "--sink")
	errs := []error{herr, serr}
	free := map[string]string{"--transformer-ops": f.transformerOps, "--forwarder-ops": f.forwarderOps}
	if f.natsPort >= 0 {
		free["--nats-port"] = net.JoinHostPort("127.0.0.1", strconv.Itoa(cmp.Or(f.natsPort, 4222)))
	}
	for _, name := range slices.Sorted(maps.Keys(free)) {
		ln, err := listenFlag(free[name], name)
		if err == nil {
			ln.Close()
		}
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		for _, ln := range []net.Listener{httpLn, sinkLn} {
			if ln != nil {
				ln.Close()
			}
		}
		return nil, nil, err
	}
	return httpLn, sinkLn, nil
}

// listenFlag listens on addr, the value of flag name.
func listenFlag(addr, name string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		hint := "another zen dev running? use another address"
		if name == "--nats-port" {
			hint = "a nats-server or another zen dev running? --nats-port -1 picks a free port"
		}
		return nil, fmt.Errorf("address in use: %s (%s; %s)", addr, name, hint)
	case err != nil:
		return nil, fmt.Errorf("%s %s: %w", name, addr, err)
	}
	return ln, nil
}

// parentWatchEvery is how often --stop-with-parent looks at the parent.
const parentWatchEvery = 200 * time.Millisecond

// watchParentInterrupt calls stop when the parent process stops catching
// SIGINT, or exits. Why: GNU make, sent SIGINT alone (not through the
// terminal, which signals the whole process group), resets its SIGINT
// handler and waits for its children without passing the signal on, so
// `kill -INT <make>` used to leave zen dev running with its ports taken
// (issue 27). The parent's caught signals are read from /proc (Linux);
// where they cannot be read, or the parent never caught SIGINT, it watches
// nothing.
func watchParentInterrupt(ctx context.Context, stop func(), every time.Duration) {
	ppid := os.Getppid()
	if caught, err := catchesSIGINT(ppid); err != nil || !caught {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if caught, err := catchesSIGINT(ppid); os.Getppid() != ppid || err != nil || !caught {
			stop()
			return
		}
	}
}

// catchesSIGINT reports whether process pid has a SIGINT handler: bit 2 of
// SigCgt in /proc/<pid>/status.
func catchesSIGINT(pid int) (bool, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if mask, ok := strings.CutPrefix(sc.Text(), "SigCgt:"); ok {
			bits, err := strconv.ParseUint(strings.TrimSpace(mask), 16, 64)
			return bits&(1<<(syscall.SIGINT-1)) != 0, err
		}
	}
	return false, fmt.Errorf("/proc/%d/status: no SigCgt", pid)
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
	p("  nats          %s  (streams in %s/nats; try: bin/nats stream ls, bin/nats built by make run or make tools)", b.natsURL, b.dir)
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

// sinkReportEvery is how often the sink logs its summary line.
const sinkReportEvery = 10 * time.Second

// sink is the local warehouse: it checks the bearer token and appends each
// event as one JSON line. It logs a summary per interval, not a line per
// event (a session used to log 18,409 lines): see report.
type sink struct {
	mu       sync.Mutex
	f        *os.File
	token    string
	log      *zap.Logger
	events   atomic.Int64
	rejected atomic.Int64
}

func newSink(path, token string, log *zap.Logger) (*sink, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	return &sink{f: f, token: token, log: log}, nil
}

func (s *sink) Close() error { return s.f.Close() }

// report logs "warehouse: 1,234 events (+120)" every interval in which
// something arrived or was refused, until ctx ends, then once more if
// anything is left unreported.
func (s *sink) report(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	events, rejected := s.events.Load(), s.rejected.Load()
	logIfChanged := func() {
		e, r := s.events.Load(), s.rejected.Load()
		if e == events && r == rejected {
			return
		}
		msg := fmt.Sprintf("warehouse: %s events (+%s)", thousands(e), thousands(e-events))
		if r > rejected {
			msg += fmt.Sprintf("; refused %s with a wrong bearer token (+%s)", thousands(r), thousands(r-rejected))
		}
		s.log.Info(msg)
		events, rejected = e, r
	}
	for {
		select {
		case <-ctx.Done():
			logIfChanged()
			return
		case <-t.C:
			logIfChanged()
		}
	}
}

// thousands formats n with commas: 18409 → "18,409".
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	start := 0
	if n < 0 {
		start = 1
	}
	for i := len(s) - 3; i > start; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func (s *sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+s.token {
		s.rejected.Add(1)
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
	s.events.Add(1)
	w.WriteHeader(http.StatusOK)
}

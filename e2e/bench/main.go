// Command bench is `make bench`: in one run on one machine it measures the
// floor of the architecture (a minimal handler doing one synchronous
// JetStream publish), the real ingester, the whole pipeline into a loopback
// warehouse, and each stage's peak RSS, and prints the ratios.
//
//	go run ./e2e/bench [-requests 20000] [-concurrency 64] [-rate 1000] [-seconds 10] [-out bench/results.md]
//
// It needs bin/ingester, bin/transformer, bin/forwarder (make build).
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zen-twilio/zen/pkg/fixture"
	"github.com/zen-twilio/zen/pkg/gctune"
	"github.com/zen-twilio/zen/pkg/natsembed"
	"github.com/zen-twilio/zen/pkg/sender"
	"github.com/zen-twilio/zen/pkg/streams"
)

// floorSubject is bound to BENCH_FLOOR, a stream with TWILIO_RAW's settings,
// so the floor's messages never reach the transformer.
const floorSubject = "bench.floor"

const (
	authToken      = "bench-auth-token-not-a-secret"
	warehouseToken = "bench-warehouse-token-not-a-secret"
	publicBase     = "http://bench.invalid" // what the requests are signed for
)

var (
	procs      *int
	cpuprofile *string
)

func main() {
	// Every process here runs with the services' GC settings: the embedded
	// NATS server as under `make run` (zen dev applies gctune too), and the
	// floor, which is the best an ingester can do, so it gets what the
	// ingester gets.
	gctune.Apply()
	if len(os.Args) > 1 && os.Args[1] == "floor" {
		if err := floor(os.Args[2], os.Args[3]); err != nil {
			fmt.Fprintln(os.Stderr, "floor:", err)
			os.Exit(1)
		}
		return
	}
	requests := flag.Int("requests", 20000, "requests per throughput phase")
	conc := flag.Int("concurrency", 64, "requests in flight")
	rate := flag.Float64("rate", 1000, "webhooks/s of the latency phase")
	seconds := flag.Int("seconds", 10, "length of the latency phase")
	out := flag.String("out", "bench/results.md", "where to write the table")
	cpuprofile = flag.String("cpuprofile", "", "write a CPU profile of this process (NATS, load, warehouse) during the burst rounds to this file (its samples labelled part=nats|load|warehouse: go tool pprof -tags), and one of each stage and of the floor (whole run) next to it, named <file>.<stage><ext>")
	procs = flag.Int("procs", 1, "GOMAXPROCS of the floor and of each stage (the manifests' CPU limit of 1 gives them 1)")
	flag.Parse()
	if err := run(*requests, *conc, *rate, *seconds, *out); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// profileOf names the CPU profile of one process next to -cpuprofile:
// <file>.<name><ext>.
func profileOf(name string) string {
	ext := filepath.Ext(*cpuprofile)
	return strings.TrimSuffix(*cpuprofile, ext) + "." + name + ext
}

// floor is the minimal ingester of this design: one synchronous JetStream
// publish of the body, then 200. It runs as its own process, like the real
// one.
func floor(listen, natsURL string) error {
	if path := os.Getenv("CPU_PROFILE"); path != "" {
		// Written until SIGTERM (proc.stop), like the services' CPU_PROFILE.
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
		go func() {
			<-sig
			pprof.StopCPUProfile()
			f.Close()
			os.Exit(0)
		}()
	}
	nc, err := nats.Connect(natsURL)
	if err != nil {
		return err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(400)
			return
		}
		if _, err := js.Publish(r.Context(), floorSubject, body); err != nil {
			w.WriteHeader(503)
			return
		}
		w.WriteHeader(200)
	})
	return http.ListenAndServe(listen, h)
}

type proc struct {
	name string
	cmd  *exec.Cmd
}

func startProc(name, bin string, args []string, env map[string]string, logDir string) (*proc, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	f, err := os.Create(filepath.Join(logDir, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &proc{name: name, cmd: cmd}, nil
}

func (p *proc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}

// harness names the bench's own process: NATS, the load generator and the
// warehouse.
const harness = "harness (NATS, load, warehouse)"

// usage is what a process has spent so far: CPU seconds (user+system),
// read/write system calls and context switches.
type usage struct{ cpu, sys, cs float64 }

func usageOf(pid int) usage { return usage{cpuOf(pid), syscallsOf(pid), switchesOf(pid)} }

// snapshot is the usage of the harness and of some processes, by name.
type snapshot map[string]usage

func takeSnapshot(procs ...*proc) snapshot {
	s := snapshot{harness: usageOf(os.Getpid())}
	for _, p := range procs {
		s[p.name] = usageOf(p.cmd.Process.Pid)
	}
	return s
}

// since is what each process spent after before.
func (s snapshot) since(before snapshot) snapshot {
	d := snapshot{}
	for name, u := range s {
		d[name] = usage{u.cpu - before[name].cpu, u.sys - before[name].sys, u.cs - before[name].cs}
	}
	return d
}

// add accumulates d into s.
func (s snapshot) add(d snapshot) {
	for name, u := range d {
		s[name] = usage{s[name].cpu + u.cpu, s[name].sys + u.sys, s[name].cs + u.cs}
	}
}

// total is the usage of all processes together.
func (s snapshot) total() usage {
	var t usage
	for _, u := range s {
		t.cpu += u.cpu
		t.sys += u.sys
		t.cs += u.cs
	}
	return t
}

// syscallsOf is the process's read and write system calls so far
// (/proc/<pid>/io syscr + syscw): the bench's measure of how well each
// stage batches its network traffic.
func syscallsOf(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return -1
	}
	return sumFields(b, "syscr", "syscw")
}

// switchesOf is the context switches (voluntary and not) of the process's
// threads so far (/proc/<pid>/task/*/status): each is a stage put to sleep
// or woken, which is what a message arriving alone costs.
func switchesOf(pid int) float64 {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	if err != nil {
		return -1
	}
	var n float64
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue // a thread that just exited
		}
		n += sumFields(b, "voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")
	}
	return n
}

// sumFields sums the values of keys in a /proc file of "key: value [unit]"
// lines.
func sumFields(b []byte, keys ...string) float64 {
	var n float64
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && slices.Contains(keys, k) {
			if f := strings.Fields(v); len(f) > 0 {
				x, _ := strconv.ParseFloat(f[0], 64)
				n += x
			}
		}
	}
	return n
}

func cpuOf(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ
}

// peakRSS is the process's high-water resident set (VmHWM), in MiB.
func (p *proc) peakRSS() float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return -1
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func waitHTTP(url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode < 500 {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s not up after %s", url, timeout)
}

// warehouse records the first receipt time of each event, keyed by the
// primary id of its dedupe key (tw-<sid>.…).
type warehouse struct {
	mu       sync.Mutex
	received map[string]time.Time
	posts    atomic.Int64
	last     atomic.Int64 // unix ns of the latest first receipt
}

func (wh *warehouse) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	_, _ = io.Copy(io.Discard, r.Body)
	if r.Header.Get("Authorization") != "Bearer "+warehouseToken {
		w.WriteHeader(401)
		return
	}
	key := strings.TrimPrefix(r.Header.Get("Idempotency-Key"), "tw-")
	if i := strings.IndexByte(key, '.'); i > 0 {
		key = key[:i]
	}
	wh.posts.Add(1)
	wh.mu.Lock()
	if _, ok := wh.received[key]; !ok {
		wh.received[key] = now
		wh.last.Store(now.UnixNano())
	}
	wh.mu.Unlock()
	w.WriteHeader(200)
}

func (wh *warehouse) count() int {
	wh.mu.Lock()
	defer wh.mu.Unlock()
	return len(wh.received)
}

type loadResult struct {
	st      sender.Stats
	sentAt  map[string]time.Time
	elapsed time.Duration
}

// merge adds a round's results.
func (l *loadResult) merge(r loadResult) {
	if l.st.ByStatus == nil {
		l.st.ByStatus = map[int]int{}
	}
	l.st.Sent += r.st.Sent
	l.st.OK += r.st.OK
	l.st.Duration += r.st.Duration
	l.st.Latencies = append(l.st.Latencies, r.st.Latencies...)
}

// finish computes the rate and percentiles of merged rounds.
func (l *loadResult) finish() {
	slices.Sort(l.st.Latencies)
	l.st.PerSecond = float64(l.st.Sent) / l.st.Duration.Seconds()
	l.st.P50, l.st.P99 = sender.Percentile(l.st.Latencies, 0.5), sender.Percentile(l.st.Latencies, 0.99)
}

// load sends n unique signed webhooks (the fixtures in turn) to base.
func load(ctx context.Context, base string, fixtures []*fixture.Fixture, n, conc int, rate float64) loadResult {
	return loadCounting(ctx, base, fixtures, n, conc, rate, nil)
}

// loadCounting is load that counts the requests sent so far in sent.
func loadCounting(ctx context.Context, base string, fixtures []*fixture.Fixture, n, conc int, rate float64, sent *atomic.Int64) loadResult {
	nonce := sender.NewNonce()
	var mu sync.Mutex
	sentAt := make(map[string]time.Time, n)
	client := sender.Client(conc, 30*time.Second)
	var st sender.Stats
	pprof.Do(ctx, pprof.Labels("part", "load"), func(ctx context.Context) {
		st = sender.Run(ctx, client, sender.Load{Count: n, Concurrency: conc, Rate: rate, OnSend: func(i int, r *sender.Request) {
			// The request is signed for the public URL and sent to base.
			r.URL = base + strings.TrimPrefix(r.URL, publicBase)
			mu.Lock()
			sentAt[r.Key] = time.Now()
			mu.Unlock()
			if sent != nil {
				sent.Add(1)
			}
		}}, func(i int) (*sender.Request, error) {
			return sender.Build(fixtures[i%len(fixtures)], publicBase+"/webhooks/twilio", authToken, "", nonce, i+1)
		})
	})
	return loadResult{st: st, sentAt: sentAt, elapsed: st.Duration}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

func run(requests, conc int, rate float64, seconds int, out string) error {
	root, err := repoRoot()
	if err != nil {
		return err
	}
	binDir := filepath.Join(root, "bin")
	for _, b := range []string{"ingester", "transformer", "forwarder"} {
		if _, err := os.Stat(filepath.Join(binDir, b)); err != nil {
			return fmt.Errorf("bin/%s missing: run make build first", b)
		}
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "zen-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	ctx := context.Background()

	// NATS with the settings of `make run` (embedded, file store). Its
	// goroutines, and the load generator's and the warehouse's, carry the
	// profiler label part=nats|load|warehouse, so the harness profile of
	// -cpuprofile splits by part (go tool pprof -tags).
	pprof.SetGoroutineLabels(pprof.WithLabels(ctx, pprof.Labels("part", "nats")))
	ns, err := natsembed.Start(natsembed.Options{Port: -1, StoreDir: filepath.Join(tmp, "nats"), ServerName: "zen-bench"})
	pprof.SetGoroutineLabels(ctx)
	if err != nil {
		return err
	}
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	natsURL := ns.ClientURL()
	nc, err := nats.Connect(natsURL)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	scfg := streams.DefaultConfig()
	if err := streams.Apply(ctx, js, scfg); err != nil {
		return err
	}
	floorStream := scfg.RawStream()
	floorStream.Name, floorStream.Subjects, floorStream.Description = "BENCH_FLOOR", []string{floorSubject}, "make bench: the floor's publishes"
	if _, err := js.CreateOrUpdateStream(ctx, floorStream); err != nil {
		return err
	}
	purge := func() error {
		for _, name := range []string{streams.StreamRaw, streams.StreamEvents, streams.StreamAttempts} {
			s, err := js.Stream(ctx, name)
			if err != nil {
				return err
			}
			if err := s.Purge(ctx); err != nil {
				return err
			}
		}
		return nil
	}

	var fixtures []*fixture.Fixture
	for _, name := range []string{"incoming_sms", "message_status_delivered", "incoming_call", "call_completed"} {
		f, err := fixture.Load(filepath.Join(root, "fixtures", "twilio", name+".json"))
		if err != nil {
			return err
		}
		fixtures = append(fixtures, f)
	}
	pkgDir := filepath.Join(root, "packages", "transforms", "twilio", "v1")
	whAddr := freeAddr()
	wh := &warehouse{received: map[string]time.Time{}}
	whSrv := &http.Server{Addr: whAddr, Handler: wh}
	go pprof.Do(ctx, pprof.Labels("part", "warehouse"), func(context.Context) { _ = whSrv.ListenAndServe() })
	defer whSrv.Close()
	env := func(listen string) map[string]string {
		return map[string]string{
			"NATS_URL": natsURL, "LISTEN_ADDR": listen, "PUBLIC_URL": publicBase, "TWILIO_AUTH_TOKEN": authToken,
			"PACKAGE_DIR": pkgDir, "LOG_LEVEL": "info", "COMMS_WAREHOUSE_URL": "http://" + whAddr + "/events",
			"COMMS_WAREHOUSE_TOKEN": warehouseToken, "GOMAXPROCS": strconv.Itoa(*procs),
		}
	}
	warm := func(base string) {
		load(ctx, base, fixtures, 500, conc, 0) // connections, JIT of caches, stream files
	}

	// 1 and 2. floor and ingest, interleaved in rounds so that a noisy
	// neighbour hits both alike; both processes run, one is loaded at a time.
	floorAddr, ingAddr := freeAddr(), freeAddr()
	flEnv := map[string]string{"GOMAXPROCS": strconv.Itoa(*procs)}
	if *cpuprofile != "" {
		flEnv["CPU_PROFILE"] = profileOf("floor")
	}
	fl, err := startProc("floor", self, []string{"floor", floorAddr, natsURL}, flEnv, tmp)
	if err != nil {
		return err
	}
	ingEnv := env(ingAddr)
	if *cpuprofile != "" {
		ingEnv["CPU_PROFILE"] = profileOf("ingest-phase")
	}
	ing, err := startProc("ingester", filepath.Join(binDir, "ingester"), nil, ingEnv, tmp)
	if err != nil {
		return err
	}
	if err := waitHTTP("http://"+floorAddr+"/", 10*time.Second); err != nil {
		return err
	}
	if err := waitHTTP("http://"+ingAddr+"/readyz", 20*time.Second); err != nil {
		return err
	}
	warm("http://" + floorAddr)
	warm("http://" + ingAddr)
	// Rounds of 5000 requests: the more floor/ingest pairs, the less one
	// noisy neighbour moves the ratio.
	rounds := max(requests/5000, 2)
	var floorRes, ingRes loadResult
	// pairRatios: ingest/floor of each round pair, to show the spread
	// within the run next to the ratio of the totals.
	var pairRatios []float64
	// What the floor process, the ingester and the harness spent in these
	// rounds: where the ingest/floor gap is spent.
	floorRoundUse, ingRoundUse := snapshot{}, snapshot{}
	for r := 0; r < rounds; r++ {
		var pair [2]float64
		for i, x := range []struct {
			base string
			acc  *loadResult
			p    *proc
			use  snapshot
		}{{"http://" + floorAddr, &floorRes, fl, floorRoundUse}, {"http://" + ingAddr, &ingRes, ing, ingRoundUse}} {
			u0 := takeSnapshot(x.p)
			res := load(ctx, x.base, fixtures, requests/rounds, conc, 0)
			if res.st.OK != res.st.Sent {
				return fmt.Errorf("%s: %d of %d ok (%s)", x.base, res.st.OK, res.st.Sent, res.st.FirstErr)
			}
			x.use.add(takeSnapshot(x.p).since(u0))
			x.acc.merge(res)
			pair[i] = res.st.PerSecond
		}
		pairRatios = append(pairRatios, pair[1]/pair[0])
	}
	slices.Sort(pairRatios)
	defer fl.stop() // the floor is measured again between the end-to-end rounds
	ing.stop()
	floorRes.finish()
	ingRes.finish()
	if err := purge(); err != nil {
		return err
	}

	// 3. end-to-end: fresh processes of every stage.
	stages := []*proc{}
	addr := freeAddr()
	stageEnv := func(name, listen string) map[string]string {
		e := env(listen)
		if *cpuprofile != "" {
			// Each stage profiles itself from start to its clean exit.
			e["CPU_PROFILE"] = profileOf(name)
		}
		return e
	}
	ing, err = startProc("ingester", filepath.Join(binDir, "ingester"), nil, stageEnv("ingester", addr), tmp)
	if err != nil {
		return err
	}
	stages = append(stages, ing)
	for _, s := range []string{"transformer", "forwarder"} {
		p, err := startProc(s, filepath.Join(binDir, s), nil, stageEnv(s, freeAddr()), tmp)
		if err != nil {
			return err
		}
		stages = append(stages, p)
	}
	defer func() {
		for _, p := range stages {
			p.stop()
		}
	}()
	base := "http://" + addr
	if err := waitHTTP(base+"/readyz", 20*time.Second); err != nil {
		return err
	}
	waitAll := func(want int, timeout time.Duration) error {
		deadline := time.Now().Add(timeout)
		for wh.count() < want {
			if time.Now().After(deadline) {
				return fmt.Errorf("warehouse has %d of %d events after %s", wh.count(), want, timeout)
			}
			time.Sleep(5 * time.Millisecond)
		}
		return nil
	}
	warm(base)
	if err := waitAll(500, 60*time.Second); err != nil {
		return err
	}

	// 3a. latency at a fixed rate; peak RSS of each stage during it.
	n := int(rate) * seconds
	before := wh.count()
	latRes := load(ctx, base, fixtures, n, conc, rate)
	if latRes.st.OK != n {
		return fmt.Errorf("e2e at %.0f/s: %d of %d ok (%s)", rate, latRes.st.OK, n, latRes.st.FirstErr)
	}
	if err := waitAll(before+n, 2*time.Minute); err != nil {
		return err
	}
	var lats []time.Duration
	wh.mu.Lock()
	for k, sent := range latRes.sentAt {
		if got, ok := wh.received[k]; ok {
			lats = append(lats, got.Sub(sent))
		}
	}
	wh.mu.Unlock()
	slices.Sort(lats)
	rss := map[string]float64{}
	for _, p := range stages {
		rss[p.name] = p.peakRSS()
	}

	// 3b. sustained: as fast as the pipeline takes them, until all arrived;
	// in rounds, each after a round of the floor, so the ratio compares
	// neighbours in time on a noisy machine.
	burstUse := snapshot{}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer f.Close()
	}
	var floor2 loadResult
	var susDur time.Duration
	floorUse := snapshot{} // the harness and the floor process during the floor rounds
	for r := 0; r < rounds; r++ {
		f0 := takeSnapshot(fl)
		fr := load(ctx, "http://"+floorAddr, fixtures, requests/rounds, conc, 0)
		if fr.st.OK != fr.st.Sent {
			return fmt.Errorf("floor: %d of %d ok (%s)", fr.st.OK, fr.st.Sent, fr.st.FirstErr)
		}
		floorUse.add(takeSnapshot(fl).since(f0))
		floor2.merge(fr)
		before = wh.count()
		s0 := takeSnapshot(stages...)
		t0 := time.Now()
		susRes := load(ctx, base, fixtures, requests/rounds, conc, 0)
		if susRes.st.OK != susRes.st.Sent {
			return fmt.Errorf("e2e sustained: %d of %d ok (%s)", susRes.st.OK, susRes.st.Sent, susRes.st.FirstErr)
		}
		if err := waitAll(before+susRes.st.Sent, 5*time.Minute); err != nil {
			return err
		}
		susDur += time.Since(t0)
		burstUse.add(takeSnapshot(stages...).since(s0))
	}
	floor2.finish()
	susTotal := rounds * (requests / rounds)
	drainRate := float64(susTotal) / susDur.Seconds()
	if *cpuprofile != "" {
		pprof.StopCPUProfile()
	}

	// 3c. sustained: the highest rate the pipeline holds with lag not
	// growing. Paced steps, each after a round of the floor: a step holds
	// when the ingester answered every request at the offered rate and the
	// warehouse had every event within holdWithin of the last send (a
	// pipeline short by 5% of the rate would be 5% × stepDur = 200 ms behind
	// at the end, and growing). Rates rise by 10% from 0.2 × floor until a
	// step does not hold (or fall by 10% until one holds, when the first
	// does not); one step between the held and the failed rate refines the
	// answer to 5%.
	const stepDur, holdWithin = 4 * time.Second, 250 * time.Millisecond
	var floor3 loadResult
	step := func(r float64) (pacedStep, error) {
		fr := load(ctx, "http://"+floorAddr, fixtures, requests/rounds, conc, 0)
		if fr.st.OK != fr.st.Sent {
			return pacedStep{}, fmt.Errorf("floor: %d of %d ok (%s)", fr.st.OK, fr.st.Sent, fr.st.FirstErr)
		}
		floor3.merge(fr)
		n := int(r * stepDur.Seconds())
		before := wh.count()
		s0 := takeSnapshot(stages...)
		var sent atomic.Int64
		done := make(chan loadResult, 1)
		go func() { done <- loadCounting(ctx, base, fixtures, n, conc, r, &sent) }()
		time.Sleep(stepDur / 2)
		mid := int(sent.Load()) - (wh.count() - before)
		res := <-done
		end := time.Now()
		atEnd := n - (wh.count() - before)
		if err := waitAll(before+n, 5*time.Minute); err != nil {
			return pacedStep{}, err
		}
		used := takeSnapshot(stages...).since(s0)
		split := fmt.Sprintf("harness %.0f", used[harness].cpu*1e6/float64(n))
		for _, p := range stages {
			split += fmt.Sprintf(", %s %.0f", p.name, used[p.name].cpu*1e6/float64(n))
		}
		t := used.total()
		ps := pacedStep{rate: r, achieved: float64(res.st.Sent) / res.elapsed.Seconds(), ok: res.st.OK,
			backlogMid: mid, backlogEnd: atEnd, behind: max(time.Unix(0, wh.last.Load()).Sub(end), 0),
			cpuPerEvent: time.Duration(t.cpu / float64(n) * 1e9), cpuSplit: split, syscallsPerEvent: t.sys / float64(n), switchesPerEvent: t.cs / float64(n)}
		switch {
		case ps.ok != n:
			ps.why = fmt.Sprintf("%d of %d answered 2xx", ps.ok, n)
		case ps.achieved < 0.97*r:
			ps.why = fmt.Sprintf("the ingester took %.0f/s of %.0f/s", ps.achieved, r)
		case ps.behind > holdWithin:
			ps.why = fmt.Sprintf("the last event arrived %s after the last send (backlog %d at half time, %d at the end)", ps.behind.Round(time.Millisecond), mid, atEnd)
		default:
			ps.held = true
		}
		return ps, nil
	}
	var held, failed pacedStep
	var steps []pacedStep
	// up: the first step held, so search upwards; else downwards.
	up := true
	for r := 0.2 * floor2.st.PerSecond; len(steps) < 16 && r >= 0.02*floor2.st.PerSecond; {
		ps, err := step(r)
		if err != nil {
			return err
		}
		steps = append(steps, ps)
		if len(steps) == 1 {
			up = ps.held
		}
		if ps.held {
			held = ps
		} else {
			failed = ps
		}
		if up != ps.held {
			break
		}
		if up {
			r *= 1.1
		} else {
			r /= 1.1
		}
	}
	if held.held && failed.rate > 0 {
		ps, err := step(math.Sqrt(held.rate * failed.rate))
		if err != nil {
			return err
		}
		steps = append(steps, ps)
		if ps.held {
			held = ps
		} else {
			failed = ps
		}
	}
	floor3.finish()
	sustained := held.rate
	lagAfter := consumerLag(ctx, js)

	// The report.
	floorRPS, ingRPS := floorRes.st.PerSecond, ingRes.st.PerSecond
	var b bytes.Buffer
	cpu := cpuModel()
	fmt.Fprintf(&b, "# make bench — %s\n\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(&b, "Machine: %s, %d CPUs, Go %s. Requests per throughput phase: %d at concurrency %d; latency phase: %.0f webhooks/s for %ds. GOMAXPROCS of the floor and of each stage: %d; GOGC of every process: %s. NATS (embedded, file store), the load generator and the warehouse share the harness process.\n\n",
		cpu, runtime.NumCPU(), strings.TrimPrefix(runtime.Version(), "go"), requests, conc, rate, seconds, *procs, gogc())
	row := func(cells ...string) { fmt.Fprintln(&b, "| "+strings.Join(cells, " | ")+" |") }
	row("measure", "value", "ratio to floor", "target", "met")
	row("---", "---", "---", "---", "---")
	yes := func(ok bool) string {
		if ok {
			return "yes"
		}
		return "NO"
	}
	row("floor: requests/s (1 sync publish per request)", fmt.Sprintf("%.0f", floorRPS), "1.00", "", "")
	row("floor: p50 / p99", ms(floorRes.st.P50)+" / "+ms(floorRes.st.P99), "", "", "")
	row("ingest: requests/s (verified, signed, unique)", fmt.Sprintf("%.0f", ingRPS), fmt.Sprintf("%.3f", ingRPS/floorRPS), "≥ 0.80", yes(ingRPS >= 0.8*floorRPS))
	row(fmt.Sprintf("ingest/floor of each of the %d round pairs: median, lowest–highest", len(pairRatios)),
		fmt.Sprintf("%.3f, %.3f–%.3f", pairRatios[len(pairRatios)/2], pairRatios[0], pairRatios[len(pairRatios)-1]), "", "", "")
	row("ingest: p50 / p99", ms(ingRes.st.P50)+" / "+ms(ingRes.st.P99), fmt.Sprintf("p99 %.3f", float64(ingRes.st.P99)/float64(floorRes.st.P99)), "p99 ≤ 1.50", yes(float64(ingRes.st.P99) <= 1.5*float64(floorRes.st.P99)))
	perReq := func(u snapshot, name string, sent int) string {
		n := float64(sent)
		return fmt.Sprintf("%.0f µs / %.0f µs, %.1f / %.1f context switches", u[name].cpu*1e6/n, u[harness].cpu*1e6/n, u[name].cs/n, u[harness].cs/n)
	}
	row("CPU per request, floor / ingest rounds above: floor process / harness", perReq(floorRoundUse, fl.name, floorRes.st.Sent), "", "", "")
	row("CPU per request, floor / ingest rounds above: ingester / harness", perReq(ingRoundUse, "ingester", ingRes.st.Sent), "", "", "")
	row("floor, measured between the end-to-end steps: requests/s", fmt.Sprintf("%.0f", floor3.st.PerSecond), "1.00", "", "")
	row(fmt.Sprintf("end-to-end: sustained events/s, lag not growing (paced %s steps)", stepDur), fmt.Sprintf("%.0f", sustained), fmt.Sprintf("%.3f", sustained/floor3.st.PerSecond), "≥ 0.30", yes(sustained >= 0.3*floor3.st.PerSecond))
	if failed.rate > 0 {
		row(fmt.Sprintf("  next step, %.0f/s (%.2f), did not hold", failed.rate, failed.rate/floor3.st.PerSecond), failed.why, "", "", "")
	}
	row("floor, measured between the burst rounds: requests/s", fmt.Sprintf("%.0f", floor2.st.PerSecond), "1.00", "", "")
	row(fmt.Sprintf("end-to-end: backlog drain, %d webhooks in bursts of %d at concurrency %d, send → all in the warehouse: events/s", susTotal, requests/rounds, conc),
		fmt.Sprintf("%.0f", drainRate), fmt.Sprintf("%.2f", drainRate/floor2.st.PerSecond), "", "")
	row(fmt.Sprintf("end-to-end at %.0f/s: p50 / p99 send → warehouse", rate), ms(sender.Percentile(lats, 0.5))+" / "+ms(sender.Percentile(lats, 0.99)), "", "p99 ≤ 50 ms", yes(sender.Percentile(lats, 0.99) <= 50*time.Millisecond))
	for _, name := range []string{"ingester", "transformer", "forwarder"} {
		row(fmt.Sprintf("peak RSS %s at %.0f/s", name, rate), fmt.Sprintf("%.1f MiB", rss[name]), "", "≤ 64 MiB", yes(rss[name] > 0 && rss[name] <= 64))
	}
	perEvent := func(sec float64) string { return fmt.Sprintf("%.0f µs", sec*1e6/float64(susTotal)) }
	for _, name := range []string{"ingester", "transformer", "forwarder", harness} {
		u := burstUse[name]
		row("CPU per event, burst rounds: "+name, perEvent(u.cpu)+fmt.Sprintf(", %.1f read/write syscalls, %.1f context switches", u.sys/float64(susTotal), u.cs/float64(susTotal)), "", "", "")
	}
	pipe, floorAll := burstUse.total(), floorUse.total()
	row("CPU per request, floor rounds: floor process / harness (NATS, load)", perEvent(floorUse[fl.name].cpu)+" / "+perEvent(floorUse[harness].cpu), "", "", "")
	row("CPU per event, burst rounds: all processes / floor's CPU per request (floor process + harness)",
		fmt.Sprintf("%s, %.1f syscalls, %.1f context switches / %s, %.1f syscalls, %.1f context switches", perEvent(pipe.cpu), pipe.sys/float64(susTotal), pipe.cs/float64(susTotal),
			perEvent(floorAll.cpu), floorAll.sys/float64(susTotal), floorAll.cs/float64(susTotal)),
		fmt.Sprintf("%.2f", floorAll.cpu/pipe.cpu), "", "")
	row("consumer lag at the end", strconv.FormatUint(lagAfter, 10), "", "0", yes(lagAfter == 0))
	row("warehouse POSTs / unique events (all phases)", fmt.Sprintf("%d / %d", wh.posts.Load(), wh.count()), "", "", "")
	fmt.Fprintf(&b, "\nThe end-to-end steps (offered rate, ratio to the floor, rate the ingester took, backlog at half time and at the end of the step, last arrival after the last send):\n\n")
	for _, ps := range steps {
		verdict := "held"
		if !ps.held {
			verdict = "did not hold: " + ps.why
		}
		fmt.Fprintf(&b, "- %.0f/s (%.2f): took %.0f/s, backlog %d / %d, last arrival +%s, CPU %s (µs: %s), %.1f syscalls and %.1f context switches per event — %s\n", ps.rate, ps.rate/floor3.st.PerSecond, ps.achieved, ps.backlogMid, ps.backlogEnd, ps.behind.Round(time.Millisecond), ps.cpuPerEvent.Round(time.Microsecond), ps.cpuSplit, ps.syscallsPerEvent, ps.switchesPerEvent, verdict)
	}
	ratios := fmt.Sprintf("ingest_vs_floor=%.3f e2e_vs_floor=%.3f", ingRPS/floorRPS, sustained/floor3.st.PerSecond)
	fmt.Fprintf(&b, "\n%s\n", ratios)
	os.Stdout.Write(b.Bytes())
	if out != "" {
		path := out
		if !filepath.IsAbs(path) {
			path = filepath.Join(root, path)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// pacedStep is one step of the sustained search.
type pacedStep struct {
	rate, achieved         float64
	ok                     int
	backlogMid, backlogEnd int
	behind                 time.Duration
	cpuPerEvent            time.Duration // all processes
	cpuSplit               string        // per process, µs per event
	syscallsPerEvent       float64
	switchesPerEvent       float64
	held                   bool
	why                    string
}

func consumerLag(ctx context.Context, js jetstream.JetStream) uint64 {
	var total uint64
	deadline := time.Now().Add(10 * time.Second)
	for {
		total = 0
		for _, c := range []struct{ stream, name string }{
			{streams.StreamRaw, streams.ConsumerTransformer},
			{streams.StreamEvents, streams.ForwarderConsumer("communications-warehouse")},
		} {
			cons, err := js.Consumer(ctx, c.stream, c.name)
			if err != nil {
				return 1<<63 - 1
			}
			info, err := cons.Info(ctx)
			if err != nil {
				return 1<<63 - 1
			}
			total += info.NumPending + uint64(info.NumAckPending)
		}
		if total == 0 || time.Now().After(deadline) {
			return total
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// gogc is the GC percentage every process of the run has: GOGC when set,
// else gctune's default.
func gogc() string {
	if v, ok := os.LookupEnv("GOGC"); ok {
		return v
	}
	return strconv.Itoa(gctune.DefaultGOGC)
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.work")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", errors.New("no go.work above the working directory")
		}
	}
}

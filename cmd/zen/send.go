package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/term"

	"github.com/zen-twilio/zen/pkg/fixture"
	"github.com/zen-twilio/zen/pkg/sender"
)

func runSend(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("send", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), `usage: zen send [flags] <fixture.json | dir>...

Signs each fixture as Twilio does (X-Twilio-Signature over the URL and the
form parameters, or bodySHA256 for JSON) and POSTs it, printing the status
and the response. With --count N, sends N copies of each fixture with unique
Sids (a load generator) and prints a summary.

flags:`)
		fs.PrintDefaults()
	}
	defURL := "http://127.0.0.1:8080/webhooks/twilio"
	if u, ok := lookupEnv("PUBLIC_URL"); ok && u != "" {
		defURL = strings.TrimRight(u, "/") + "/webhooks/twilio"
	}
	defToken := devAuthToken
	if t, ok := lookupEnv("TWILIO_AUTH_TOKEN"); ok && t != "" {
		defToken = strings.Split(t, ",")[0]
	}
	target := fs.String("url", defURL, "webhook URL, exactly as Twilio would call it (default $PUBLIC_URL/webhooks/twilio)")
	token := fs.String("auth-token", defToken, "auth token to sign with (default $TWILIO_AUTH_TOKEN, else the zen dev token)")
	event := fs.String("event", "", "event type, sent as the signed path /webhooks/twilio/<event> (default: none, the ingester infers it from the signed parameters)")
	count := fs.Int("count", 0, "send N unique copies of each fixture (load generator)")
	conc := fs.Int("concurrency", 1, "requests in flight with --count")
	rate := fs.Float64("rate", 0, "with --count: requests per second overall (0: as fast as possible)")
	asJSON := fs.Bool("json", false, "with --count: print the summary as JSON")
	timeout := fs.Duration("timeout", 15*time.Second, "per-request timeout")
	if code, ok := parseFlags(fs, args, stdout, stderr); !ok {
		return code
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	var fixtures []*fixture.Fixture
	for _, arg := range fs.Args() {
		paths := []string{arg}
		if st, err := os.Stat(arg); err == nil && st.IsDir() {
			if paths, err = fixture.List(arg); err != nil || len(paths) == 0 {
				fmt.Fprintf(stderr, "zen send: no *.json fixtures in %s\n", arg)
				return 1
			}
		}
		for _, p := range paths {
			f, err := fixture.Load(p)
			if err != nil {
				fmt.Fprintln(stderr, "zen send:", err)
				return 1
			}
			fixtures = append(fixtures, f)
		}
	}
	client := sender.Client(max(*conc, 1), *timeout)

	if *count > 0 {
		n := *count * len(fixtures)
		nonce := sender.NewNonce()
		return sendLoad(ctx, client, sender.Load{Count: n, Concurrency: *conc, Rate: *rate}, *asJSON, stdout, func(i int) (*sender.Request, error) {
			return sender.Build(fixtures[i%len(fixtures)], *target, *token, *event, nonce, i/len(fixtures)+1)
		})
	}

	code := 0
	for _, f := range fixtures {
		r, err := sender.Build(f, *target, *token, *event, "", 0)
		if err != nil {
			fmt.Fprintln(stderr, "zen send:", err)
			return 1
		}
		resp := sender.Send(ctx, client, r)
		if resp.Err != nil {
			fmt.Fprintf(stdout, "%-32s error: %v\n", f.Name, resp.Err)
			code = 1
			continue
		}
		body := strings.TrimSpace(string(resp.Body))
		if body == "" {
			body = "(empty)"
		}
		fmt.Fprintf(stdout, "%-32s %d %s  %s\n", f.Name, resp.Status, resp.Latency.Round(time.Millisecond), body)
		if resp.Status < 200 || resp.Status > 299 {
			code = 1
		}
	}
	return code
}

// progressEvery is how often the progress line of a load run is rewritten.
const progressEvery = 250 * time.Millisecond

// sendLoad runs a load and prints its summary; on a terminal it shows a
// progress line meanwhile, rewritten in place at most 4 times a second
// (nothing when stdout is a file or a pipe). It returns 1 unless every
// request got a 2xx.
func sendLoad(ctx context.Context, client *http.Client, l sender.Load, asJSON bool, stdout io.Writer, build func(int) (*sender.Request, error)) int {
	var done atomic.Int64
	client.Transport = countingTransport{next: client.Transport, done: &done}
	stopProgress := func() {}
	if isTerminal(stdout) {
		stopProgress = showProgress(stdout, l.Count, &done)
	}
	st := sender.Run(ctx, client, l, build)
	stopProgress()
	if asJSON {
		_ = json.NewEncoder(stdout).Encode(st)
	} else {
		fmt.Fprintln(stdout, summary(st))
		if st.FirstErr != "" {
			fmt.Fprintln(stdout, "first failure:", strings.TrimSpace(st.FirstErr))
		}
	}
	if st.OK != st.Sent {
		return 1
	}
	return 0
}

// summary is one line: the count, each status with its count, the errors,
// the rate and the latencies, e.g. "sent 1000: 200 ×998, 503 ×2 in 3.2s
// (312/s); latency p50 2ms p99 9ms max 14ms".
func summary(st sender.Stats) string {
	codes := slices.Sorted(maps.Keys(st.ByStatus))
	parts := make([]string, 0, len(codes)+1)
	for _, c := range codes {
		parts = append(parts, fmt.Sprintf("%d ×%d", c, st.ByStatus[c]))
	}
	if st.Errors > 0 {
		parts = append(parts, fmt.Sprintf("error ×%d", st.Errors))
	}
	if len(parts) == 0 {
		parts = append(parts, "nothing sent")
	}
	return fmt.Sprintf("sent %d: %s in %s (%.0f/s); latency p50 %s p99 %s max %s",
		st.Sent, strings.Join(parts, ", "), roundDuration(st.Duration), st.PerSecond,
		st.P50.Round(time.Microsecond), st.P99.Round(time.Microsecond), st.Max.Round(time.Microsecond))
}

// roundDuration keeps two or three significant digits: 3.2s, 41ms.
func roundDuration(d time.Duration) string {
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(100 * time.Millisecond).String()
}

// showProgress rewrites "sent 512/1000 (420/s)" in place until the
// returned function is called, which clears the line.
func showProgress(w io.Writer, total int, done *atomic.Int64) func() {
	start := time.Now()
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(progressEvery)
		defer t.Stop()
		for {
			select {
			case <-stop:
				fmt.Fprint(w, "\r\033[K")
				return
			case <-t.C:
				n := done.Load()
				fmt.Fprintf(w, "\r\033[Ksent %d/%d (%.0f/s)", n, total, float64(n)/time.Since(start).Seconds())
			}
		}
	}()
	return func() { close(stop); <-stopped }
}

// isTerminal reports whether w is a terminal (not a file or a pipe).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// countingTransport counts the requests that completed, answered or not.
type countingTransport struct {
	next http.RoundTripper
	done *atomic.Int64
}

func (c countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	defer c.done.Add(1)
	return c.next.RoundTrip(r)
}

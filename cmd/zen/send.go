package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

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
		nonce := sender.NewNonce()
		n := *count * len(fixtures)
		st := sender.Run(ctx, client, sender.Load{Count: n, Concurrency: *conc, Rate: *rate}, func(i int) (*sender.Request, error) {
			return sender.Build(fixtures[i%len(fixtures)], *target, *token, *event, nonce, i/len(fixtures)+1)
		})
		if *asJSON {
			_ = json.NewEncoder(stdout).Encode(st)
		} else {
			fmt.Fprintf(stdout, "sent %d in %s: %.0f req/s; 2xx %d, other %v, errors %d; latency p50 %s p99 %s max %s\n",
				st.Sent, st.Duration.Round(time.Millisecond), st.PerSecond, st.OK, other(st.ByStatus), st.Errors,
				st.P50.Round(time.Microsecond), st.P99.Round(time.Microsecond), st.Max.Round(time.Microsecond))
			if st.FirstErr != "" {
				fmt.Fprintln(stdout, "first failure:", st.FirstErr)
			}
		}
		if st.OK != st.Sent {
			return 1
		}
		return 0
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

func other(by map[int]int) map[int]int {
	out := map[int]int{}
	for s, n := range by {
		if s < 200 || s > 299 {
			out[s] = n
		}
	}
	return out
}

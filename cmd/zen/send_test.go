package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zen-twilio/zen/pkg/fixture"
	"github.com/zen-twilio/zen/pkg/sender"
)

// The summary of a load lists each status with its count, no map dump;
// piped output has no progress line.
func TestSendLoadSummary(t *testing.T) {
	t.Parallel()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%5 == 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	f, err := fixture.Load(filepath.Join(testRoot(t), "fixtures", "twilio", "incoming_sms.json"))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	code := sendLoad(t.Context(), sender.Client(4, 5*time.Second), sender.Load{Count: 20, Concurrency: 4}, false, &out, func(i int) (*sender.Request, error) {
		return sender.Build(f, srv.URL+"/webhooks/twilio", "t", "", "nonce", i+1)
	})
	if code != 1 {
		t.Errorf("exit %d with 503s, want 1", code)
	}
	summary := regexp.MustCompile(`^sent 20: 200 ×16, 503 ×4 in \d+(\.\d)?m?s \(\d+/s\); latency p50 \S+ p99 \S+ max \S+\nfirst failure: 503\n$`)
	if !summary.MatchString(out.String()) {
		t.Errorf("output = %q, want it to match %s", out.String(), summary)
	}
}

func TestSummaryCountsErrors(t *testing.T) {
	t.Parallel()
	st := sender.Stats{Sent: 1000, OK: 997, Errors: 1, ByStatus: map[int]int{200: 997, 503: 2}, Duration: 3200 * time.Millisecond, PerSecond: 312.5}
	if got, want := summary(st), "sent 1000: 200 ×997, 503 ×2, error ×1 in 3.2s (312/s); latency p50 0s p99 0s max 0s"; got != want {
		t.Errorf("summary = %q, want %q", got, want)
	}
}

// On a terminal the progress line is rewritten in place (\r), at most
// 4 times a second, and cleared at the end.
func TestProgressLine(t *testing.T) {
	t.Parallel()
	var w syncBuf
	var done atomic.Int64
	done.Store(512)
	stop := showProgress(&w, 1000, &done)
	time.Sleep(1100 * time.Millisecond) // the ticker's rate is what is tested
	stop()
	out := w.String()
	if !strings.Contains(out, "\r\033[Ksent 512/1000 (") {
		t.Errorf("progress = %q, want \"sent 512/1000 (…/s)\" rewritten in place", out)
	}
	if n := strings.Count(out, "\r"); n < 2 || n > 6 {
		t.Errorf("%d rewrites in 1.1s (plus the clearing one), want 4 a second", n)
	}
	if !strings.HasSuffix(out, "\r\033[K") || strings.Contains(out, "\n") {
		t.Errorf("progress = %q, want it cleared at the end and no newline", out)
	}
}

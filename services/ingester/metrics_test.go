package ingester_test

import (
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"

	"github.com/zen-twilio/zen/pkg/buildinfo"
)

// TestMetricsAtZeroFromStart: right after start, before any request, the
// known label sets are on /metrics at 0 (panels and rate() show 0, not "No
// data"), and zen_build_info names the ingester's build.
func TestMetricsAtZeroFromStart(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	r, err := http.Get(e.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	body := string(b)
	var want []string
	for _, reason := range []string{"missing_signature", "invalid_signature", "unknown_account"} {
		want = append(want, `zen_ingester_signature_failures_total{reason="`+reason+`"} 0`)
	}
	for _, ev := range []string{"message-status", "incoming-message", "incoming-call", "call-status", "recording-status", "verification-status", "unknown"} {
		for _, code := range []string{"200", "503"} {
			want = append(want, `zen_ingester_requests_total{code="`+code+`",event="`+ev+`"} 0`)
		}
	}
	for _, code := range []string{"400", "403", "405", "413", "415", "503"} {
		want = append(want, `zen_ingester_requests_total{code="`+code+`",event="none"} 0`)
	}
	for _, w := range want {
		if !strings.Contains(body, w+"\n") {
			t.Errorf("/metrics at start lacks %s", w)
		}
	}
	if w := `zen_build_info{goversion="` + runtime.Version() + `",revision="` + buildinfo.Read().Revision + `",service="ingester",version="dev"} 1`; !strings.Contains(body, w+"\n") {
		t.Errorf("/metrics at start lacks %s", w)
	}
}

package transformer_test

import (
	"io"
	"net/http"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/zen-twilio/zen/pkg/buildinfo"
	"github.com/zen-twilio/zen/pkg/pack"
)

// TestMetricsAtZeroFromStart: right after start, before any message, the
// series the package's rules can produce are on /metrics at 0 (panels and
// rate() show 0, not "No data"), with the worker's outcomes and
// zen_build_info for the transformer.
func TestMetricsAtZeroFromStart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.start(nil)
	resp, err := http.Get("http://" + r.svc.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	body := string(b)

	p, err := pack.LoadWith(filepath.Join(repoRoot(t), "packages", "transforms", "twilio", "v1"), testEnv, pack.Options{AllowMissingEnv: true})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`zen_transformer_events_total{outcome="dead_letter",type="unknown"} 0`,
		`zen_transformer_events_total{outcome="published",type="message.status"} 0`,
		`zen_worker_messages_total{outcome="ack",reason="",stage="transformer"} 0`,
		`zen_worker_messages_total{outcome="retry",reason="publish_failed",stage="transformer"} 0`,
		`zen_worker_messages_total{outcome="dead_letter",reason="missing_required",stage="transformer"} 0`,
		`zen_worker_messages_total{outcome="dead_letter",reason="unknown_event",stage="transformer"} 0`,
		`zen_build_info{goversion="` + runtime.Version() + `",revision="` + buildinfo.Read().Revision + `",service="transformer",version="dev"} 1`,
	}
	for _, rule := range p.Rules {
		want = append(want,
			`zen_transformer_events_total{outcome="published",type="`+rule.EventType+`"} 0`,
			`zen_transformer_events_total{outcome="retry",type="`+rule.TwilioEvent+`"} 0`,
			`zen_transformer_events_total{outcome="dead_letter",type="`+rule.TwilioEvent+`"} 0`)
	}
	for _, w := range want {
		if !strings.Contains(body, w+"\n") {
			t.Errorf("/metrics at start lacks %s", w)
		}
	}
}

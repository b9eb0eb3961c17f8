package deploy

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap/zaptest"

	"github.com/zen-twilio/zen/pkg/envconf"
	"github.com/zen-twilio/zen/pkg/fixture"
	"github.com/zen-twilio/zen/pkg/streams"
	"github.com/zen-twilio/zen/pkg/twiliosig"
	"github.com/zen-twilio/zen/services/forwarder"
	"github.com/zen-twilio/zen/services/ingester"
	"github.com/zen-twilio/zen/services/transformer"
)

// runner is a started service.
type runner interface {
	Run(ctx context.Context) error
}

// TestServices runs the three real services as the prod overlay configures
// them: their environment is the rendered Deployments' (secrets replaced by
// test values, NATS_URL, LISTEN_ADDR, PACKAGE_DIR and the warehouse URL
// pointed at this machine), each connects as its own NATS user to a real
// nats-server with the shipped auth.conf, after the provisioner applied the
// streams as the Job does. Their probes' paths answer, and a signed Twilio
// webhook travels through all three to the warehouse.
func TestServices(t *testing.T) {
	url := startNATS(t)
	r := mustRender(t, "prod")
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()

	// The Job's work, as the provisioner.
	cfg, tset, fset := jobSettings(t)
	pnc, _ := connectAs(t, url, "provisioner")
	pjs, _ := jetstream.New(pnc)
	if err := streams.Apply(ctx, pjs, cfg); err != nil {
		t.Fatalf("apply streams: %v", err)
	}
	if err := streams.ApplyConsumers(ctx, pjs, tset, fset, routes(t)); err != nil {
		t.Fatalf("apply consumers: %v", err)
	}

	// The volume the ConfigMap zen-package becomes.
	pkgDir := t.TempDir()
	for name, cm := range r.configMaps() {
		if strings.HasPrefix(name, "zen-package-") {
			for file, data := range cm.Data {
				if err := os.WriteFile(filepath.Join(pkgDir, file), []byte(data), 0o600); err != nil {
					t.Fatal(err)
				}
			}
		}
	}

	var (
		whMu     sync.Mutex
		received []*http.Request
		bodies   [][]byte
	)
	warehouse := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		whMu.Lock()
		received, bodies = append(received, req), append(bodies, b)
		whMu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	defer warehouse.Close()

	lookup := func(stage string) (envconf.Lookup, map[string]string) {
		_, c := r.stage(t, stage)
		m := map[string]string{}
		for k, v := range r.env(t, c) {
			switch v.Source {
			case "secret":
				m[k] = secretFor(v.Secret)
			default:
				m[k] = v.Value
			}
		}
		m["NATS_URL"] = url
		m["LISTEN_ADDR"] = "127.0.0.1:0"
		m["PACKAGE_DIR"] = pkgDir
		if _, ok := m["COMMS_WAREHOUSE_URL"]; ok {
			m["COMMS_WAREHOUSE_URL"] = warehouse.URL + "/v1/events"
		}
		return envconf.MapLookup(m), m
	}

	type started struct {
		name string
		addr string
		done chan error
	}
	var svcs []started
	runCtx, stop := context.WithCancel(context.Background())
	start := func(name string, svc runner, addr string) {
		done := make(chan error, 1)
		go func() { done <- svc.Run(runCtx) }()
		svcs = append(svcs, started{name, addr, done})
	}
	t.Cleanup(func() {
		stop()
		for _, s := range svcs {
			select {
			case err := <-s.done:
				if err != nil {
					t.Errorf("%s.Run: %v", s.name, err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("%s did not stop within 30s", s.name)
			}
		}
	})

	il, ienv := lookup("ingester")
	icfg, err := ingester.ConfigFromEnv(il)
	if err != nil {
		t.Fatalf("ingester config: %v", err)
	}
	isvc, err := ingester.New(ctx, icfg, zaptest.NewLogger(t).Named("ingester"))
	if err != nil {
		t.Fatalf("ingester.New: %v", err)
	}
	start("ingester", isvc, isvc.Addr().String())

	tl, _ := lookup("transformer")
	tcfg, err := transformer.ConfigFromEnv(tl)
	if err != nil {
		t.Fatalf("transformer config: %v", err)
	}
	tsvc, err := transformer.New(ctx, tcfg, zaptest.NewLogger(t).Named("transformer"))
	if err != nil {
		t.Fatalf("transformer.New: %v", err)
	}
	start("transformer", tsvc, tsvc.Addr().String())

	fl, _ := lookup("forwarder")
	fcfg, err := forwarder.ConfigFromEnv(fl)
	if err != nil {
		t.Fatalf("forwarder config: %v", err)
	}
	fsvc, err := forwarder.New(ctx, fcfg, zaptest.NewLogger(t).Named("forwarder"))
	if err != nil {
		t.Fatalf("forwarder.New: %v", err)
	}
	start("forwarder", fsvc, fsvc.Addr().String())

	// The probes' paths (TestProbes checks the manifests use them).
	for _, s := range svcs {
		for _, path := range []string{"/healthz", "/readyz"} {
			eventually(t, 15*time.Second, s.name+" "+path+" answers 200", func() bool {
				resp, err := http.Get("http://" + s.addr + path)
				if err != nil {
					return false
				}
				resp.Body.Close()
				return resp.StatusCode == http.StatusOK
			})
		}
	}

	// A signed webhook, as Twilio sends it to PUBLIC_URL.
	f, err := fixture.Load("../fixtures/twilio/incoming_sms.json")
	if err != nil {
		t.Fatal(err)
	}
	form, err := f.Form()
	if err != nil {
		t.Fatal(err)
	}
	const path = "/webhooks/twilio/incoming-message"
	token := strings.Split(ienv["TWILIO_AUTH_TOKEN"], ",")[0]
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+isvc.Addr().String()+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Twilio-Signature", twiliosig.Sign(ienv["PUBLIC_URL"]+path, form, token))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("post webhook: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("webhook answered %d %s, want 200", resp.StatusCode, body)
	}

	eventually(t, 20*time.Second, "the warehouse receives the event", func() bool {
		whMu.Lock()
		defer whMu.Unlock()
		return len(received) > 0
	})
	whMu.Lock()
	defer whMu.Unlock()
	if got, want := received[0].Header.Get("Authorization"), "Bearer "+fakeSecret(secretKey("zen-warehouse", "token")); got != want {
		t.Errorf("Authorization = %q, want %q (the Secret zen-warehouse, key token)", got, want)
	}
	var ev struct {
		EventType string `json:"event_type"`
	}
	if err := json.Unmarshal(bodies[0], &ev); err != nil || ev.EventType != "message.incoming" {
		t.Errorf("warehouse got %s (%v), want a message.incoming event", bodies[0], err)
	}
}

// eventually polls cond every 20 ms until it holds or within passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting until %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

package transformer_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zen-twilio/zen/pkg/envconf"
	"github.com/zen-twilio/zen/pkg/fixture"
	"github.com/zen-twilio/zen/pkg/natstest"
	"github.com/zen-twilio/zen/pkg/streams"
	"github.com/zen-twilio/zen/pkg/transform"
	"github.com/zen-twilio/zen/pkg/twiliosig"
	"github.com/zen-twilio/zen/pkg/zen"
	"github.com/zen-twilio/zen/services/ingester"
)

// TestGoldensEndToEnd: every fixture, signed as Twilio signs it and sent
// through a real ingester into JetStream and this transformer, yields the
// event of its golden (both clocks fixed at the card's time). Read-only:
// goldens are rewritten only by `make goldens`.
func TestGoldensEndToEnd(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const token = "e2e-token-not-a-secret"
	const public = "https://hooks.example.com"
	icfg := ingester.DefaultConfig()
	icfg.ListenAddr = "127.0.0.1:0"
	icfg.PublicURL = public
	icfg.AuthTokens = []envconf.Secret{token}
	icfg.Conn = e.srv.Conn(t)
	icfg.StreamsApply = false
	icfg.Now = func() time.Time { return cardTime }
	ing, err := ingester.New(context.Background(), icfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ing.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	e.start(nil)

	root := repoRoot(t)
	files, _ := fixture.List(filepath.Join(root, "fixtures", "twilio"))
	for _, f := range files {
		fx, err := fixture.Load(f)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(fx.Name, func(t *testing.T) {
			body, _ := fx.Bytes()
			path := "/webhooks/twilio/" + fx.Event()
			var sig string
			if fx.IsJSON() {
				var signed string
				signed, sig = twiliosig.SignJSON(public+path, body, token)
				path = strings.TrimPrefix(signed, public)
			} else {
				form, _ := fx.Form()
				sig = twiliosig.Sign(public+path, form, token)
			}
			req, _ := http.NewRequest(http.MethodPost, "http://"+ing.Addr().String()+path, bytes.NewReader(body))
			req.Header.Set("Content-Type", fx.ContentType())
			req.Header.Set("X-Twilio-Signature", sig)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("ingester answered %d", resp.StatusCode)
			}
			reqID := resp.Header.Get(zen.HeaderRequestID)
			var events []json.RawMessage
			natstest.CheckFor(t, 10*time.Second, func() error {
				events = events[:0]
				for _, m := range e.streamMsgs(streams.StreamEvents) {
					if m.Header.Get(zen.HeaderRequestID) == reqID {
						events = append(events, m.Data)
					}
				}
				if len(events) == 0 {
					return fmt.Errorf("no event for request %s yet", reqID)
				}
				return nil
			})
			var got []byte
			if len(events) == 1 {
				got = events[0]
			} else {
				got, _ = json.Marshal(events)
			}
			want, err := os.ReadFile(filepath.Join(root, "goldens", "twilio", fx.Name+".golden.json"))
			if err != nil {
				t.Fatal(err)
			}
			cg, err := transform.Canonical(got)
			if err != nil {
				t.Fatal(err)
			}
			cw, err := transform.Canonical(want)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(cg, cw) {
				t.Errorf("end-to-end event differs from the golden\n%s", transform.Diff(cw, cg))
			}
		})
	}
}

package ingester_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/zen-twilio/zen/pkg/envconf"
	"github.com/zen-twilio/zen/pkg/natstest"
	"github.com/zen-twilio/zen/pkg/streams"
	"github.com/zen-twilio/zen/services/ingester"
)

// BenchmarkHTTP compares, in one run over loopback against the same NATS
// server, the floor (a handler doing one synchronous JetStream publish) and
// the real ingester, on unique signed requests. The ratio is what counts.
func BenchmarkHTTP(b *testing.B) {
	srv := natstest.Run(b)
	js := srv.JetStream(b)
	natstest.ApplyStreams(b, js, streams.DefaultConfig())

	floorLn, _ := net.Listen("tcp", "127.0.0.1:0")
	floorSrv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if _, err := js.Publish(r.Context(), "twilio.raw.floor", body); err != nil {
			w.WriteHeader(503)
			return
		}
		w.WriteHeader(200)
	})}
	go func() { _ = floorSrv.Serve(floorLn) }()
	defer floorSrv.Close()

	cfg := ingester.DefaultConfig()
	cfg.ListenAddr, cfg.PublicURL, cfg.StreamsApply = "127.0.0.1:0", publicURL, false
	cfg.AuthTokens = []envconf.Secret{authToken}
	cfg.Conn = srv.Conn(b)
	svc, err := ingester.New(context.Background(), cfg, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	defer func() { cancel(); <-done }()

	var n atomic.Int64
	run := func(b *testing.B, base string) {
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}, Timeout: 10 * time.Second}
		b.SetParallelism(32)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				i := n.Add(1)
				path := "/webhooks/twilio/message-status"
				sid := fmt.Sprintf("SM%032d", i)
				body := "MessageSid=" + sid + "&MessageStatus=delivered&AccountSid=AC00000000000000000000000000000001&To=%2B15558675310&From=%2B15017122661&ApiVersion=2010-04-01"
				req, _ := http.NewRequest(http.MethodPost, base+path, strings.NewReader(body))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Set("X-Twilio-Signature", sign(authToken, publicURL+path, map[string][]string{
					"MessageSid": {sid}, "MessageStatus": {"delivered"}, "AccountSid": {"AC00000000000000000000000000000001"},
					"To": {"+15558675310"}, "From": {"+15017122661"}, "ApiVersion": {"2010-04-01"}}))
				resp, err := client.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Errorf("status %d", resp.StatusCode)
					return
				}
			}
		})
	}
	b.Run("floor", func(b *testing.B) { run(b, "http://"+floorLn.Addr().String()) })
	b.Run("ingester", func(b *testing.B) { run(b, "http://"+svc.Addr().String()) })
}

package main

import (
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/zen-twilio/zen/pkg/natsconn"
	"github.com/zen-twilio/zen/pkg/natstest"
)

// `zen streams apply` (the Job, as the NATS user provisioner) makes every
// JetStream API request with the provisioner's inbox prefix, the only one
// auth.conf lets that user read replies on.
func TestStreamsApplyUsesTheProvisionerInbox(t *testing.T) {
	srv := natstest.Run(t)
	var (
		mu      sync.Mutex
		replies = map[string]string{}
	)
	obs := srv.Conn(t)
	if _, err := obs.Subscribe("$JS.API.>", func(m *nats.Msg) {
		mu.Lock()
		replies[m.Subject] = m.Reply
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	if err := obs.Flush(); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runZen(t, "streams", "apply", "--nats-url", srv.URL, "--package", shippedPkg)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	if err := obs.Flush(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if _, ok := replies["$JS.API.INFO"]; !ok || len(replies) < 5 {
		t.Fatalf("saw %d API requests (%v), want the account info and the streams' and consumers'", len(replies), replies)
	}
	want := natsconn.InboxPrefix("provisioner") + "."
	for subj, reply := range replies {
		if !strings.HasPrefix(reply, want) {
			t.Errorf("%s replies to %q, want the prefix %s", subj, reply, want)
		}
	}
}

package natsconn

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zen-twilio/zen/pkg/natstest"
)

// Concurrent publishes each get their own ack, and each ack names the
// message that publish stored: the replies are routed to the right request.
func TestRequestsRouteEachAckToItsPublish(t *testing.T) {
	t.Parallel()
	srv := natstest.Run(t)
	js := srv.JetStream(t)
	ctx := context.Background()
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "ROUTE", Subjects: []string{"route"}})
	if err != nil {
		t.Fatal(err)
	}
	nc := srv.Conn(t)
	r := startRequests(t, nc, 5*time.Second)

	const n = 500
	seqs := make([]uint64, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			m := &nats.Msg{Subject: "route", Data: []byte("MessageSid=SM" + strconv.Itoa(i)),
				Header: nats.Header{"Nats-Msg-Id": {"route-" + strconv.Itoa(i)}}}
			resp, err := r.Do(m)
			if err != nil {
				errs[i] = err
				return
			}
			ack, err := parseAck(resp.Data)
			if err != nil {
				errs[i] = err
				return
			}
			seqs[i] = ack.Sequence
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	seen := map[uint64]bool{}
	for i, seq := range seqs {
		if seen[seq] {
			t.Fatalf("publish %d got seq %d, which another publish got too", i, seq)
		}
		seen[seq] = true
		got, err := stream.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		if want := "MessageSid=SM" + strconv.Itoa(i); string(got.Data) != want {
			t.Fatalf("publish %d: its ack names seq %d, which holds %q, not %q", i, seq, got.Data, want)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.waiting) != 0 {
		t.Fatalf("%d requests still waiting after every reply came", len(r.waiting))
	}
}

func parseAck(data []byte) (*jetstream.PubAck, error) {
	var ack struct {
		Error *jetstream.APIError `json:"error"`
		jetstream.PubAck
	}
	if err := json.Unmarshal(data, &ack); err != nil {
		return nil, fmt.Errorf("ack %q: %w", data, err)
	}
	if ack.Error != nil || ack.Stream == "" {
		return nil, fmt.Errorf("not an ack: %q", data)
	}
	return &ack.PubAck, nil
}

// Publishes that are ready together leave in few writes: what Requests is
// for. 64 handlers released at once, one CPU as in production
// (the manifests' limit of 1).
func TestRequestsGroupConcurrentPublishes(t *testing.T) {
	// Not parallel: it sets GOMAXPROCS for the process.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	srv := natstest.Run(t)
	js := srv.JetStream(t)
	if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "GROUP", Subjects: []string{"group"}}); err != nil {
		t.Fatal(err)
	}
	d := &natstest.WriteCounter{}
	nc := srv.Conn(t, nats.SetCustomDialer(d))
	r := startRequests(t, nc, 5*time.Second)
	if err := nc.Flush(); err != nil { // the subscription is on the server
		t.Fatal(err)
	}

	const handlers = 64
	var total, writes int64
	for round := range 5 {
		start := make(chan struct{})
		var wg sync.WaitGroup
		errs := make([]error, handlers)
		for i := range handlers {
			wg.Go(func() {
				<-start
				m := &nats.Msg{Subject: "group", Data: []byte("x"),
					Header: nats.Header{"Nats-Msg-Id": {fmt.Sprintf("group-%d-%d", round, i)}}}
				resp, err := r.Do(m)
				if err == nil {
					_, err = parseAck(resp.Data)
				}
				errs[i] = err
			})
		}
		time.Sleep(10 * time.Millisecond) // every handler waits on start
		w0 := d.Writes()
		close(start)
		wg.Wait()
		writes += d.Writes() - w0
		total += handlers
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d publishes in %d writes", total, writes)
	// One write per publish is what nats.Conn.RequestMsg does here.
	if writes*4 > total {
		t.Fatalf("%d publishes took %d writes: fewer than 4 publishes per write", total, writes)
	}
}

// A request nobody answers times out, and is forgotten: a late reply goes
// nowhere, and no other request gets it.
func TestRequestsTimeOutAndDropLateReplies(t *testing.T) {
	t.Parallel()
	srv := natstest.Run(t)
	nc := srv.Conn(t)
	held := make(chan *nats.Msg, 1)
	answerOn(t, srv, "slow", func(m *nats.Msg) { held <- m })
	r := startRequests(t, nc, 200*time.Millisecond)

	start := time.Now()
	if _, err := r.Do(&nats.Msg{Subject: "slow", Data: []byte("first")}); !errors.Is(err, nats.ErrTimeout) {
		t.Fatalf("unanswered request: got %v, want %v", err, nats.ErrTimeout)
	}
	if took := time.Since(start); took < 200*time.Millisecond {
		t.Fatalf("timed out after %s, before its 200ms", took)
	}
	late := <-held

	// The next request gets its own answer, not the late one.
	done := make(chan error, 1)
	go func() {
		resp, err := r.Do(&nats.Msg{Subject: "slow", Data: []byte("second")})
		if err == nil && string(resp.Data) != "answer to second" {
			err = fmt.Errorf("second request got %q", resp.Data)
		}
		done <- err
	}()
	second := <-held
	if err := late.Respond([]byte("answer to first")); err != nil {
		t.Fatal(err)
	}
	if err := second.Respond([]byte("answer to second")); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.waiting) != 0 {
		t.Fatalf("%d requests still waiting", len(r.waiting))
	}
}

// With nothing on the subject, the request fails at once with
// nats.ErrNoResponders, as RequestMsg does (the ingester then hands the
// message to the library, which retries through a leader election).
func TestRequestsReportNoResponders(t *testing.T) {
	t.Parallel()
	srv := natstest.Run(t)
	r := startRequests(t, srv.Conn(t), 5*time.Second)
	start := time.Now()
	if _, err := r.Do(&nats.Msg{Subject: "nobody.here", Data: []byte("x")}); !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("got %v, want %v", err, nats.ErrNoResponders)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("no responders took %s: it waited for the timeout", took)
	}
}

// After stop, a publish fails at once instead of waiting for its timeout.
func TestRequestsAfterStop(t *testing.T) {
	t.Parallel()
	srv := natstest.Run(t)
	r, err := NewRequests(srv.Conn(t), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Do(&nats.Msg{Subject: "x", Data: []byte("x")}); !errors.Is(err, ErrStopped) {
		t.Fatalf("got %v, want %v", err, ErrStopped)
	}
}

package natsconn

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zen-twilio/zen/pkg/natstest"
)

// The fast check takes exactly nats-server's success acks; every other reply
// goes to the library's decoding. Either way PubAck answers as that decoding
// does (the ingester's TestPublishAgreesWithTheLibraryOnEveryReply holds
// the same replies to the library itself, through a real server).
func TestPubAckFastCheck(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		reply     string
		fast, dup bool // recognised without decoding; a duplicate's ack
	}{
		{`{"stream":"TWILIO_RAW","seq":1}`, true, false},
		{`{"stream":"TWILIO_RAW","seq":0}`, true, false},
		{`{"stream":"TWILIO_RAW","seq":00}`, false, false},
		{`{"stream":"TWILIO_RAW","seq":01}`, false, false},
		{`{"stream":"TWILIO_RAW","seq":18446744073709551615}`, false, false},
		{`{"stream":"TWILIO_RAW","seq":7,"duplicate": true}`, true, true},
		{`{"stream":"TWILIO_RAW","domain":"hub","seq":7}`, true, false},
		{`{"stream":"TWILIO_RAW","domain":"","seq":7}`, true, false},
		{`{"stream":"TWILIO_RAW","domain":"hub","seq":7,"duplicate": true}`, true, true},
		{`{"stream":"TWILIO_RAW","seq":7,"batch":"b1","count":3}`, false, false},
		{`{"stream": "TWILIO_RAW", "seq": 7}`, false, false},
		{`{"stream":"TWILIO_RAW","seq":7,"duplicate":true}`, false, true},
		{`{"stream":"TWILIO_RAW","seq":7,"duplicate": false}`, false, false},
		{`{"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"},"stream":"TWILIO_RAW","seq":0}`, false, false},
		{`{"stream":"TWILIO_RAW","seq":0,"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 3"}}`, false, false},
		{`{"stream":"TWILIO_RAW","seq":1,"Error":{"code":500,"description":"case-insensitive key"}}`, false, false},
		{`{"stream":"","seq":1}`, false, false},
		{`{"stream":"a\"b","seq":1}`, false, false},
		{`{"stream":"TWILIO_RAW","seq":1`, false, false},
		{`{"stream":"TWILIO_RAW","seq":}`, false, false},
		{`{"seq":1}`, false, false},
		{`+OK`, false, false},
		{`null`, false, false},
		{``, false, false},
	} {
		reply := []byte(tc.reply)
		fast, fastDup := isPubAck(reply)
		if fast != tc.fast || (fast && fastDup != tc.dup) {
			t.Errorf("isPubAck(%s) = %v, %v; want %v, %v", tc.reply, fast, fastDup, tc.fast, tc.dup)
		}
		dup, err := PubAck(reply)
		libDup, libErr := decodePubAck(reply)
		if dup != libDup || (err == nil) != (libErr == nil) || (err != nil && err.Error() != libErr.Error()) {
			t.Errorf("PubAck(%s) = %v, %v; the library's decoding: %v, %v", tc.reply, dup, err, libDup, libErr)
		}
		if err == nil && dup != tc.dup {
			t.Errorf("PubAck(%s): duplicate = %v, want %v", tc.reply, dup, tc.dup)
		}
	}
}

// The acks a real stream writes, for a new message and for its retry, are
// the ones the fast check recognises: no publish pays the decoder.
func TestPubAckRecognisesTheServersAcks(t *testing.T) {
	t.Parallel()
	srv := natstest.Run(t)
	if _, err := srv.JetStream(t).CreateStream(context.Background(), jetstream.StreamConfig{Name: "ACKS", Subjects: []string{"acks"}}); err != nil {
		t.Fatal(err)
	}
	nc := srv.Conn(t)
	for i, wantDup := range []bool{false, true} {
		m := &nats.Msg{Subject: "acks", Data: []byte("body"), Header: nats.Header{"Nats-Msg-Id": {"once"}}}
		resp, err := nc.RequestMsg(m, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if ok, dup := isPubAck(resp.Data); !ok || dup != wantDup {
			t.Errorf("publish %d: nats-server's ack %s: fast check %v, duplicate %v; want true, %v", i+1, resp.Data, ok, dup, wantDup)
		}
	}
}

// FuzzPubAck: whatever the reply, one the fast check accepts is one the
// library's decoding accepts, with the same duplicate flag, and PubAck
// answers as that decoding does. In-process, so coverage guides the fuzzer.
func FuzzPubAck(f *testing.F) {
	for _, s := range []string{
		`{"stream":"TWILIO_RAW","seq":1}`, `{"stream":"TWILIO_RAW","seq":7,"duplicate": true}`,
		`{"stream":"S","domain":"d","seq":0}`, `{"error":{"code":503,"description":"x"}}`,
		`{"stream":"S","seq":1,"ERROR":{"code":1}}`, `{"stream":"S","stream":"","seq":1}`, `{"stream":"\u0041","seq":1}`,
		`{"stream":"0","seq":00}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, reply []byte) {
		libDup, libErr := decodePubAck(reply)
		if ok, dup := isPubAck(reply); ok && (libErr != nil || dup != libDup) {
			t.Fatalf("isPubAck accepts %q (duplicate %v), the library's decoding: %v, %v", reply, dup, libDup, libErr)
		}
		if dup, err := PubAck(reply); (err == nil) != (libErr == nil) || (err == nil && dup != libDup) {
			t.Fatalf("PubAck(%q) = %v, %v; the library's decoding: %v, %v", reply, dup, err, libDup, libErr)
		}
	})
}

package transform_test

import (
	"encoding/json"
	"testing"
)

var statusBody = []byte("SmsSid=SM00000000000000000000000000000002&SmsStatus=delivered&MessageStatus=delivered&To=%2B15558675310&MessagingServiceSid=MG00000000000000000000000000000001&MessageSid=SM00000000000000000000000000000002&AccountSid=AC00000000000000000000000000000001&From=%2B15017122661&ApiVersion=2010-04-01")

func BenchmarkTransformForm(b *testing.B) {
	e := mustEngine(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.Transform("message-status", "application/x-www-form-urlencoded", statusBody, cardTime); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTransformCloudEvent(b *testing.B) {
	e := mustEngine(b)
	body := []byte(`[{"specversion":"1.0","type":"com.twilio.accountsecurity.verify.verification.approved","id":"EZ1","data":{"account_sid":"AC1","service_sid":"VA1","verification_sid":"VE1","to":"+15017122661","verification_status":"APPROVED","country":"US","send_code_attempts":{"count":1,"attempts":[{"channel":"SMS"}]}}}]`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.Transform("verification-status", "application/json", body, cardTime); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncodeEvent: zen.Event.AppendJSON, as the transformer encodes,
// against encoding/json in the same run (the same bytes: zen's FuzzAppendJSON).
func BenchmarkEncodeEvent(b *testing.B) {
	e := mustEngine(b)
	rs, err := e.Transform("message-status", "", statusBody, cardTime)
	if err != nil {
		b.Fatal(err)
	}
	ev := rs[0].Event
	b.Run("AppendJSON", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ev.AppendJSON(make([]byte, 0, 512)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(ev); err != nil {
				b.Fatal(err)
			}
		}
	})
}

package ingester

import "testing"

// The scanner finds the pair in one head however the bytes arrive, and
// only there.
func TestHeadScanner(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		stream string
		want   bool
	}{
		{"both", "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", true},
		{"both, other order and case", "POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\nCONTENT-LENGTH: 5\r\n\r\n", true},
		{"both, bare line feeds", "POST / HTTP/1.1\nContent-Length: 5\nTransfer-Encoding: chunked\n\n", true},
		{"both in the second request", "GET / HTTP/1.1\r\nHost: x\r\n\r\nPOST / HTTP/1.1\r\nContent-Length:5\r\nTransfer-Encoding:chunked\r\n\r\n", true},
		{"length alone", "POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\na=b", false},
		{"chunked alone", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\na=b\r\n0\r\n\r\n", false},
		{"one each in two requests", "POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\na=bPOST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", false},
		{"a header merely named alike", "POST / HTTP/1.1\r\nX-Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", false},
		{"a folded line is no header", "POST / HTTP/1.1\r\nContent-Length: 5\r\nX-A: b\r\n Transfer-Encoding: chunked\r\n\r\n", false},
	} {
		for _, step := range []int{1, 2, 7, len(tc.stream)} {
			var s headScanner
			got := false
			for i := 0; i < len(tc.stream); i += step {
				if s.scan([]byte(tc.stream[i:min(i+step, len(tc.stream))])) {
					got = true
				}
			}
			if got != tc.want {
				t.Errorf("%s, read %d bytes at a time: ambiguous = %v, want %v", tc.name, step, got, tc.want)
			}
		}
	}
}

// BenchmarkHeadScanner: the cost the connection watch adds to each read,
// for a Twilio-sized request (head and a 1 KB form) and a 1 MiB form.
func BenchmarkHeadScanner(b *testing.B) {
	head := "POST /webhooks/twilio/message-status HTTP/1.1\r\nHost: hooks.example.com\r\nContent-Type: application/x-www-form-urlencoded\r\n" +
		"X-Twilio-Signature: 0/KCTR6DLpKmkAf8muzZqo1nDgQ=\r\nI-Twilio-Idempotency-Token: 6f1d2c1e-0000-0000-0000-000000000000\r\nContent-Length: 1024\r\n\r\n"
	for _, bc := range []struct {
		name string
		body int
	}{{"twilio-1KB", 1 << 10}, {"form-1MiB", 1 << 20}} {
		p := []byte(head + string(make([]byte, bc.body)))
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(p)))
			var s headScanner
			for b.Loop() {
				s.scan(p)
			}
		})
	}
}

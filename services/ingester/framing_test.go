package ingester_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// smuggle is a request with both Content-Length and Transfer-Encoding whose
// chunked body ends at once, a validly signed request hidden after the
// 0-chunk (a proxy framing by Content-Length sees it as the body).
func smuggle(t *testing.T, host string) string {
	t.Helper()
	const path = "/webhooks/twilio/message-status"
	body := "MessageSid=SMsmuggled&MessageStatus=delivered"
	form, _ := url.ParseQuery(body)
	hidden := "POST " + path + " HTTP/1.1\r\nHost: " + host + "\r\nContent-Type: application/x-www-form-urlencoded\r\n" +
		"X-Twilio-Signature: " + sign(authToken, publicURL+path, form) + "\r\n" +
		fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(body), body)
	chunked := "0\r\n\r\n" + hidden
	return "POST " + path + " HTTP/1.1\r\nHost: " + host + "\r\nContent-Type: application/x-www-form-urlencoded\r\n" +
		fmt.Sprintf("Content-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n%s", len(chunked), chunked)
}

// exchange writes raw on a new connection and returns the responses read
// until the server closes it (or 5 s pass).
func exchange(t *testing.T, addr, raw string) []*http.Response {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	var out []*http.Response
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return out
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		out = append(out, resp)
	}
}

// Go's net/http alone accepts the pair: it drops Content-Length, reads the
// body chunked and serves the hidden request too. This is why the ingester
// watches its connections; if this test fails, net/http has started to
// refuse the pair itself and framing.go can go.
func TestNetHTTPAloneAcceptsContentLengthWithTransferEncoding(t *testing.T) {
	t.Parallel()
	var served atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	resps := exchange(t, addr, smuggle(t, addr)+"GET /close HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if len(resps) != 3 || resps[0].StatusCode != 200 || served.Load() != 3 {
		t.Errorf("plain net/http: %d responses, %d requests served; want 3 and 3 (the pair accepted, the hidden request served)", len(resps), served.Load())
	}
}

// The real ingester answers the pair with 400, closes the connection, and
// stores nothing: the hidden, validly signed request is never served.
func TestContentLengthWithTransferEncodingIs400(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	addr := strings.TrimPrefix(e.base, "http://")
	resps := exchange(t, addr, smuggle(t, addr))
	if len(resps) != 1 || resps[0].StatusCode != 400 || !resps[0].Close {
		t.Errorf("responses %v, want one 400 that closes the connection", statusOf(resps))
	}
	if got := e.rawCount(); got != 0 {
		t.Errorf("TWILIO_RAW has %d messages, want 0: the hidden request was served", got)
	}
	if got := e.metric(`zen_ingester_requests_total{code="400",event="none"}`); got != "1" {
		t.Errorf(`requests_total{code="400"} = %s, want 1`, got)
	}

	// Chunked alone, and Content-Length alone, are still served.
	const path = "/webhooks/twilio/message-status"
	head := func(body string) string {
		form, _ := url.ParseQuery(body)
		return "POST " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nContent-Type: application/x-www-form-urlencoded\r\n" +
			"X-Twilio-Signature: " + sign(authToken, publicURL+path, form) + "\r\nConnection: close\r\n"
	}
	body := "MessageSid=SMchunked&MessageStatus=sent"
	chunked := head(body) + fmt.Sprintf("Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n", len(body), body)
	if resps := exchange(t, addr, chunked); len(resps) != 1 || resps[0].StatusCode != 200 {
		t.Errorf("a chunked request without Content-Length: %v, want one 200", statusOf(resps))
	}
	body = "MessageSid=SMlength&MessageStatus=sent"
	if resps := exchange(t, addr, head(body)+fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(body), body)); len(resps) != 1 || resps[0].StatusCode != 200 {
		t.Errorf("a request with Content-Length alone: %v, want one 200", statusOf(resps))
	}
	if got := e.rawCount(); got != 2 {
		t.Errorf("TWILIO_RAW has %d messages, want the 2 well-framed requests", got)
	}
}

func statusOf(resps []*http.Response) []int {
	out := []int{}
	for _, r := range resps {
		out = append(out, r.StatusCode)
	}
	return out
}

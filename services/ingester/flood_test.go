package ingester_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zen-twilio/zen/services/ingester"
)

// The flood defences, each with the shipped defaults unless the test is
// about a bound it sets small: slow bodies are cut off in seconds and hold
// nothing a real request needs; the cheapest rejections need no byte of the
// body; bodies in memory and open connections are bounded.

const formPath = "/webhooks/twilio/message-status"

// rawConn sends head (and a Content-Length body announcement) on a new
// connection and returns it with a reader of the answer.
func rawConn(t *testing.T, e *env, head string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatal(err)
	}
	return conn, bufio.NewReader(conn)
}

func formHead(contentLength int, extra string) string {
	return fmt.Sprintf("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n%s\r\n", formPath, contentLength, extra)
}

// answerOf reads the status of the answer on br within limit.
func answerOf(t *testing.T, conn net.Conn, br *bufio.Reader, limit time.Duration) (int, time.Duration) {
	t.Helper()
	start := time.Now()
	_ = conn.SetReadDeadline(start.Add(limit))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no answer within %s: %v", limit, err)
	}
	defer resp.Body.Close()
	if _, err := io.ReadAll(resp.Body); err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	return resp.StatusCode, time.Since(start)
}

// A body trickled a byte at a time is answered 408 once the grace period
// (BODY_READ_TIMEOUT, 2 s) has passed, not after READ_TIMEOUT (15 s), and
// the connection closes.
func TestSlowBodyIsCutOffInSeconds(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	conn, br := rawConn(t, e, formHead(2000, "X-Twilio-Signature: forged\r\n")+"MessageSid=SM")
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
				if _, err := conn.Write([]byte("1")); err != nil {
					return
				}
			}
		}
	}()
	code, took := answerOf(t, conn, br, 10*time.Second)
	if code != http.StatusRequestTimeout {
		t.Fatalf("slow body answered %d, want 408", code)
	}
	if def := ingester.DefaultConfig().BodyReadTimeout; took > def+2*time.Second {
		t.Errorf("slow body held its connection %s, want about BODY_READ_TIMEOUT (%s)", took, def)
	}
	if b, err := br.ReadByte(); err != io.EOF {
		t.Errorf("the connection stayed open after the 408 (read %q, %v)", b, err)
	}
}

// A body that keeps up BODY_MIN_RATE is read, however long it takes past the
// grace period: a 64 KiB body sent at twice the minimum rate (4 s) is stored.
func TestBodyAtTheMinimumRateIsStored(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	rate := int(ingester.DefaultConfig().BodyMinRate) * 2
	form := url.Values{"MessageSid": {"SMslowbutsteady"}, "MessageStatus": {"sent"}, "Pad": {strings.Repeat("p", 64<<10)}}
	body := form.Encode()
	head := formHead(len(body), "X-Twilio-Signature: "+sign(authToken, publicURL+formPath, form)+"\r\n")
	conn, br := rawConn(t, e, head)
	chunk := rate / 10
	for off := 0; off < len(body); off += chunk {
		if _, err := io.WriteString(conn, body[off:min(off+chunk, len(body))]); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code, _ := answerOf(t, conn, br, 10*time.Second); code != http.StatusOK {
		t.Fatalf("a body at twice the minimum rate answered %d, want 200", code)
	}
	if got := e.rawCount(); got != 1 {
		t.Errorf("TWILIO_RAW has %d messages, want 1", got)
	}
}

// Hundreds of slow bodies at once leave real requests unharmed: a slow
// client holds no slot a real request waits for.
func TestSlowBodiesDoNotStarveRealRequests(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	const slow = 300 // more than MAX_IN_FLIGHT (128) and its old 2× body slots
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range slow {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := net.Dial("tcp", strings.TrimPrefix(e.base, "http://"))
			if err != nil {
				return
			}
			defer conn.Close()
			_, _ = io.WriteString(conn, formHead(4000, "X-Twilio-Signature: forged\r\n")+"A=")
			for {
				select {
				case <-stop:
					return
				case <-time.After(200 * time.Millisecond):
					if _, err := conn.Write([]byte("a")); err != nil {
						return
					}
				}
			}
		}()
	}
	time.Sleep(300 * time.Millisecond) // the slow bodies are all open
	for i := range 20 {
		form := url.Values{"MessageSid": {fmt.Sprintf("SMreal%02d", i)}, "MessageStatus": {"sent"}}
		if r := e.post(formPath, "application/x-www-form-urlencoded", []byte(form.Encode()), nil); r.StatusCode != http.StatusOK {
			t.Errorf("real request %d during %d slow bodies: %d", i, slow, r.StatusCode)
		}
	}
	close(stop)
	wg.Wait()
	if got := e.rawCount(); got != 20 {
		t.Errorf("TWILIO_RAW has %d messages, want the 20 real ones", got)
	}
}

// An announced body over MAX_BODY_BYTES is 413 and a request without a
// signature 403 before any byte of the body is sent.
func TestCheapRejectionsNeedNoBody(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	for _, c := range []struct {
		name string
		head string
		want int
	}{
		{"1 MiB announced", formHead(1<<20, "X-Twilio-Signature: forged\r\n"), http.StatusRequestEntityTooLarge},
		{"unsigned", formHead(2000, ""), http.StatusForbidden},
	} {
		conn, br := rawConn(t, e, c.head) // the body never comes
		if code, _ := answerOf(t, conn, br, time.Second); code != c.want {
			t.Errorf("%s: %d, want %d", c.name, code, c.want)
		}
	}
	if got := e.metric(`zen_ingester_signature_failures_total{reason="missing_signature"}`); got != "1" {
		t.Errorf("missing_signature failures = %q, want 1", got)
	}
}

// A chunked body (no Content-Length) is cut at MAX_BODY_BYTES: 413.
func TestChunkedBodyOverTheLimitIs413(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	req, err := http.NewRequest(http.MethodPost, e.base+formPath, io.MultiReader(strings.NewReader("A="), strings.NewReader(strings.Repeat("a", int(ingester.DefaultMaxBodyBytes)))))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Twilio-Signature", "forged")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if req.ContentLength != 0 || resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("chunked body of MAX_BODY_BYTES+2: %d (content length %d), want 413", resp.StatusCode, req.ContentLength)
	}
}

// More than MAX_FORM_PARAMS parameters is 413 before parsing; exactly that
// many is parsed (and, signed, stored).
func TestFormParameterLimit(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	max := ingester.DefaultConfig().MaxFormParams
	form := func(n int) url.Values {
		f := url.Values{"MessageSid": {"SMparams"}, "MessageStatus": {"sent"}}
		for i := len(f); i < n; i++ {
			f.Set(fmt.Sprintf("P%d", i), "v")
		}
		return f
	}
	if r := e.post(formPath, "application/x-www-form-urlencoded", []byte(form(max+1).Encode()), nil); r.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("%d parameters: %d, want 413", max+1, r.StatusCode)
	}
	if r := e.post(formPath, "application/x-www-form-urlencoded", []byte(form(max).Encode()), nil); r.StatusCode != http.StatusOK {
		t.Errorf("%d parameters: %d, want 200", max, r.StatusCode)
	}
	if r := e.get(fmt.Sprintf("%s?%s", formPath, form(max+1).Encode())); r != http.StatusRequestEntityTooLarge {
		t.Errorf("GET with %d parameters: %d, want 413", max+1, r)
	}
}

// The bodies held at once are bounded by BODY_MEMORY_BYTES: a request whose
// body does not fit beside the ones being read gets 503 with Retry-After,
// and fits again once they are gone.
func TestBodyMemoryBudget(t *testing.T) {
	t.Parallel()
	e := start(t, func(c *ingester.Config) { c.MaxBodyBytes, c.BodyMemoryBytes = 8<<10, 8<<10 })
	held, _ := rawConn(t, e, formHead(8000, "X-Twilio-Signature: forged\r\n")+"A="+strings.Repeat("a", 6000))
	time.Sleep(200 * time.Millisecond) // its 6 KB are read and charged
	form := url.Values{"MessageSid": {"SMbudget"}, "MessageStatus": {"sent"}, "Pad": {strings.Repeat("p", 3000)}}
	r := e.post(formPath, "application/x-www-form-urlencoded", []byte(form.Encode()), nil)
	if r.StatusCode != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" {
		t.Errorf("over the budget: %d (Retry-After %q), want 503 with Retry-After", r.StatusCode, r.Header.Get("Retry-After"))
	}
	held.Close()
	time.Sleep(200 * time.Millisecond) // the held body is given back
	if r := e.post(formPath, "application/x-www-form-urlencoded", []byte(form.Encode()), nil); r.StatusCode != http.StatusOK {
		t.Errorf("after the held body went: %d, want 200", r.StatusCode)
	}
}

// At MAX_CONNECTIONS open connections a new one waits to be accepted, and is
// served as soon as one closes.
func TestConnectionsAreBounded(t *testing.T) {
	t.Parallel()
	e := start(t, func(c *ingester.Config) { c.MaxConnections = 2 })
	a, _ := rawConn(t, e, "")
	_, _ = rawConn(t, e, "")
	time.Sleep(100 * time.Millisecond)
	got := make(chan int, 1)
	go func() {
		resp, err := http.Get(e.base + "/healthz")
		if err != nil {
			got <- 0
			return
		}
		resp.Body.Close()
		got <- resp.StatusCode
	}()
	select {
	case code := <-got:
		t.Fatalf("a third connection was served (%d) while two were open", code)
	case <-time.After(500 * time.Millisecond):
	}
	a.Close()
	select {
	case code := <-got:
		if code != http.StatusOK {
			t.Errorf("after one closed: %d, want 200", code)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting connection was not served after one closed")
	}
}

// get sends a signed GET of path and returns the status.
func (e *env) get(path string) int {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.base+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("X-Twilio-Signature", sign(authToken, publicURL+path, nil))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

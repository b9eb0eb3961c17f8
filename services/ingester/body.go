package ingester

import (
	"errors"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// Reading a body is where a hostile client costs the ingester most: it holds
// a connection, a goroutine and a buffer for as long as it takes to send. So
// a body must keep up a minimum rate (after a grace period, BODY_MIN_RATE
// bytes per second), or the read times out (408) and the connection closes;
// and all bodies being held at once share one byte budget
// (BODY_MEMORY_BYTES), charged as bytes arrive, not as announced, so a
// client that announces a large body and trickles it holds almost nothing.
// Beyond the budget a request gets 503 with Retry-After, never an
// unbounded heap.

// The ways reading a body fails, each with its answer (bodyStatus; a spent
// budget is shed with Retry-After by the handler).
var (
	errBodyTooLarge = errors.New("request body too large")
	errBodyTooSlow  = errors.New("request body too slow")
	errBodyBudget   = errors.New("bodies in memory at their bound")
	errBodyRead     = errors.New("could not read the request body")
)

// bodyStatus is the HTTP status of a failed body read.
func bodyStatus(err error) int {
	switch err {
	case errBodyTooLarge:
		return http.StatusRequestEntityTooLarge
	case errBodyTooSlow:
		return http.StatusRequestTimeout
	}
	return http.StatusBadRequest
}

// bodyBudget is the byte budget of the bodies held in memory at once.
type bodyBudget struct {
	limit int64
	used  atomic.Int64
}

// take charges n bytes, or reports that the budget cannot hold them.
func (b *bodyBudget) take(n int64) bool {
	if b.used.Add(n) > b.limit {
		b.used.Add(-n)
		return false
	}
	return true
}

func (b *bodyBudget) give(n int64) { b.used.Add(-n) }

// readBody reads r's body within the limits and returns it with the number
// of bytes charged to the budget, which the caller gives back when the body
// is no longer held (after the publish).
func (s *Service) readBody(w http.ResponseWriter, r *http.Request) ([]byte, int64, error) {
	if r.ContentLength > s.cfg.MaxBodyBytes {
		return nil, 0, errBodyTooLarge
	}
	now := time.Now()
	br := &bodyReader{
		body:     r.Body,
		rc:       http.NewResponseController(w),
		start:    now,
		grace:    s.cfg.BodyReadTimeout,
		minRate:  s.cfg.BodyMinRate,
		deadline: now.Add(s.cfg.ReadTimeout),
		budget:   s.bodies,
	}
	body, err := io.ReadAll(io.LimitReader(br, s.cfg.MaxBodyBytes+1))
	switch {
	case br.err != nil:
		err = br.err
	case err != nil:
		err = errBodyRead
	case int64(len(body)) > s.cfg.MaxBodyBytes:
		err = errBodyTooLarge
	}
	if err != nil {
		s.bodies.give(br.n)
		// What is left of the body is not worth reading: close the
		// connection rather than drain it.
		w.Header().Set("Connection", "close")
		return nil, 0, err
	}
	return body, br.n, nil
}

// bodyReader reads a request body under a deadline that moves with the
// bytes received: start + grace + received/minRate, never later than the
// request's own READ_TIMEOUT. A client keeping up the rate never meets it;
// one trickling a byte at a time is cut off after the grace period.
type bodyReader struct {
	body     io.Reader
	rc       *http.ResponseController
	start    time.Time
	grace    time.Duration
	minRate  int64 // bytes per second
	deadline time.Time
	budget   *bodyBudget
	n        int64 // bytes read, all charged to budget
	err      error // why reading stopped, when the limits stopped it
}

func (b *bodyReader) Read(p []byte) (int, error) {
	d := b.start.Add(b.grace + time.Duration(b.n*int64(time.Second)/b.minRate))
	_ = b.rc.SetReadDeadline(earlier(d, b.deadline)) // ErrNotSupported only off a real connection (tests' recorders)
	n, err := b.body.Read(p)
	if n > 0 && !b.budget.take(int64(n)) {
		b.err = errBodyBudget
		return 0, b.err
	}
	b.n += int64(n)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		b.err = errBodyTooSlow
		return n, b.err
	}
	return n, err
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

package e2e

import (
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Warehouse is a loopback warehouse that misbehaves on a schedule: a share of
// requests get 500, some 429 with Retry-After, some are answered 200 only
// after the forwarder's timeout (committed, but too late for the caller).
// It records every request by Idempotency-Key.
type Warehouse struct {
	Token      string
	Fail500    float64       // share of 500s (0.20)
	Fail429    float64       // share of 429s with Retry-After: 1
	Slow       float64       // share answered after SlowDelay
	SlowDelay  time.Duration // longer than the forwarder's HTTP timeout
	MaxFailure int           // failures per key before it is always accepted

	mu        sync.Mutex
	rng       *rand.Rand
	failures  map[string]int
	accepted  map[string]int  // 2xx commits per key
	slowKeys  map[string]bool // keys committed by a slow (timed-out) answer
	firstSeen map[string]time.Time
	acceptAt  map[string][]time.Time
	statuses  map[int]int
	badAuth   int
	noKey     int
	bodies    map[string]json.RawMessage
	total     int
}

// NewWarehouse returns a warehouse with the failure mix.
func NewWarehouse(token string, slowDelay time.Duration) *Warehouse {
	return &Warehouse{
		Token: token, Fail500: 0.20, Fail429: 0.05, Slow: 0.02, SlowDelay: slowDelay, MaxFailure: 4,
		rng:      rand.New(rand.NewPCG(1, 2)),
		failures: map[string]int{}, accepted: map[string]int{}, slowKeys: map[string]bool{},
		firstSeen: map[string]time.Time{}, acceptAt: map[string][]time.Time{},
		statuses: map[int]int{}, bodies: map[string]json.RawMessage{},
	}
}

// ServeHTTP implements http.Handler.
func (w *Warehouse) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	key := r.Header.Get("Idempotency-Key")
	w.mu.Lock()
	w.total++
	if r.Header.Get("Authorization") != "Bearer "+w.Token {
		w.badAuth++
		w.statuses[401]++
		w.mu.Unlock()
		http.Error(rw, "bad token", http.StatusUnauthorized)
		return
	}
	if key == "" {
		w.noKey++
	}
	if _, ok := w.firstSeen[key]; !ok {
		w.firstSeen[key] = time.Now()
	}
	fate := 200
	if w.failures[key] < w.MaxFailure {
		switch x := w.rng.Float64(); {
		case x < w.Fail500:
			fate = 500
		case x < w.Fail500+w.Fail429:
			fate = 429
		case x < w.Fail500+w.Fail429+w.Slow:
			fate = -1
		}
	}
	if fate == 500 || fate == 429 {
		w.failures[key]++
	}
	w.mu.Unlock()

	switch fate {
	case 500:
		w.count(500)
		http.Error(rw, "warehouse hiccup", http.StatusInternalServerError)
		return
	case 429:
		w.count(429)
		rw.Header().Set("Retry-After", "1")
		http.Error(rw, "slow down", http.StatusTooManyRequests)
		return
	case -1:
		time.Sleep(w.SlowDelay)
		w.commit(key, body, true)
		w.count(200)
		rw.WriteHeader(http.StatusOK)
		return
	}
	w.commit(key, body, false)
	w.count(200)
	rw.WriteHeader(http.StatusOK)
}

func (w *Warehouse) count(status int) {
	w.mu.Lock()
	w.statuses[status]++
	w.mu.Unlock()
}

func (w *Warehouse) commit(key string, body []byte, slow bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.accepted[key]++
	w.acceptAt[key] = append(w.acceptAt[key], time.Now())
	if slow {
		w.slowKeys[key] = true
	}
	if _, ok := w.bodies[key]; !ok {
		w.bodies[key] = append(json.RawMessage(nil), body...)
	}
}

// Accepted returns the set of keys committed at least once.
func (w *Warehouse) Accepted() map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string]int, len(w.accepted))
	for k, v := range w.accepted {
		out[k] = v
	}
	return out
}

// Duplicate is a key committed more than once, with its explanation.
type Duplicate struct {
	Key, Why string
	Count    int
}

// Duplicates lists keys committed more than once. A duplicate is explained
// when the key's first commit was a slow answer the forwarder had already
// given up on, or when a forwarder was killed within window of a commit.
func (w *Warehouse) Duplicates(kills []time.Time, window time.Duration) (dups []Duplicate, unexplained int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for k, n := range w.accepted {
		if n < 2 {
			continue
		}
		why := ""
		if w.slowKeys[k] {
			why = "first commit answered after the forwarder's timeout"
		}
		for _, at := range w.acceptAt[k] {
			for _, kt := range kills {
				if d := kt.Sub(at); why == "" && d >= -window && d <= window {
					why = "forwarder SIGKILLed " + strconv.FormatInt(d.Milliseconds(), 10) + "ms after the commit, before its KV write"
				}
			}
		}
		if why == "" {
			unexplained++
			why = "UNEXPLAINED"
		}
		dups = append(dups, Duplicate{Key: k, Count: n, Why: why})
	}
	return dups, unexplained
}

// Stats returns status counts, requests without Idempotency-Key, bad-auth count, total.
func (w *Warehouse) Stats() (statuses map[int]int, noKey, badAuth, total int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	statuses = map[int]int{}
	for k, v := range w.statuses {
		statuses[k] = v
	}
	return statuses, w.noKey, w.badAuth, w.total
}

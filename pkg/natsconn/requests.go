package natsconn

import (
	"errors"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Requests sends requests and hands each caller its reply, like
// nats.Conn.RequestMsg, with one difference: the requests of goroutines that
// are ready at the same moment leave in one write (a group commit).
//
// With RequestMsg each request wakes nats.go's flusher, which the Go
// scheduler runs next, before the other goroutines already runnable: one
// write per request, one read of it in the server, one write of its reply
// and one read of that here. For the ingester's publishes under load that
// was a fifth of its system calls (`make bench`). Here the callers queue
// their messages to one goroutine, which yields once (runtime.Gosched)
// before it sends what is queued: the callers runnable at that moment queue
// theirs first, all of them go in one write, and the replies come back in
// one read.
//
// Send is the asynchronous form: the request leaves at once and a callback
// gets the reply, as with jetstream's PublishMsgAsync.
//
// A reply arrives on <inbox>.<token>, one token per request, on one
// subscription, as with RequestMsg's response multiplexer.
type Requests struct {
	nc      *nats.Conn
	timeout time.Duration
	prefix  string // the replies' inbox, with the dot
	sub     *nats.Subscription
	queue   chan *request
	quit    chan struct{}
	stopped chan struct{}
	timers  sync.Pool

	// Send's: a slot per request awaiting its reply, the requests awaiting
	// theirs, and the end of the goroutine that times them out.
	slots     chan struct{}
	sending   sync.WaitGroup
	sweepQuit chan struct{}
	swept     chan struct{}

	mu      sync.Mutex
	last    uint64              // the last token given
	waiting map[uint64]*request // published, the reply not yet here
	closed  bool                // Stop was called: no Send starts
}

// request is one caller's message and where its reply goes.
type request struct {
	m     *nats.Msg
	token uint64    // 0 until sent
	gone  bool      // the caller stopped waiting (under Requests.mu)
	done  chan resp // Do's, 1-buffered: the reply, or why none

	// Send's:
	fn       func(*nats.Msg, error)
	deadline time.Time // when it times out (under Requests.mu)
	retries  int       // "no responders" answers still retried
}

type resp struct {
	m   *nats.Msg
	err error
}

// ErrStopped is the error of a request made after Stop.
var ErrStopped = errors.New("natsconn: requests stopped")

// ErrTooManyPending is Send's error when MaxPending requests still await
// their replies after SendStallWait.
var ErrTooManyPending = errors.New("natsconn: too many requests awaiting their replies")

// Send's limits, jetstream's for PublishMsgAsync (nats.go v1.55.0).
const (
	// MaxPending is how many Sends may await their replies at once.
	MaxPending = 4000
	// SendStallWait is how long a Send waits for a slot when MaxPending
	// requests await their replies.
	SendStallWait = 200 * time.Millisecond
	// SendRetries is how many times a Send answered "no responders" (a
	// stream without a leader for a moment) is sent again, SendRetryWait
	// apart, before its callback gets nats.ErrNoResponders.
	SendRetries   = 2
	SendRetryWait = 250 * time.Millisecond
)

// NewRequests subscribes to the replies' inbox and starts the sending
// goroutine and the one timing out Sends; Stop ends them. Each request waits
// at most timeout.
func NewRequests(nc *nats.Conn, timeout time.Duration) (*Requests, error) {
	r := &Requests{nc: nc, timeout: timeout, prefix: nc.NewInbox() + ".",
		queue: make(chan *request, 1024), quit: make(chan struct{}), stopped: make(chan struct{}),
		slots: make(chan struct{}, MaxPending), sweepQuit: make(chan struct{}), swept: make(chan struct{}),
		waiting: map[uint64]*request{}}
	sub, err := nc.Subscribe(r.prefix+"*", r.reply)
	if err != nil {
		return nil, err
	}
	r.sub = sub
	go r.send()
	go r.sweep(nc.StatusChanged(nats.RECONNECTING, nats.CLOSED))
	return r, nil
}

// Do sends m as a request and returns its reply; nats.ErrTimeout after the
// timeout, nats.ErrNoResponders when nothing listens on the subject (as
// RequestMsg does). It sets m.Reply.
func (r *Requests) Do(m *nats.Msg) (*nats.Msg, error) {
	select {
	case <-r.quit:
		return nil, ErrStopped
	default:
	}
	req := &request{m: m, done: make(chan resp, 1)}
	select {
	case r.queue <- req:
	case <-r.quit:
		return nil, ErrStopped
	}
	t, _ := r.timers.Get().(*time.Timer)
	if t == nil {
		t = time.NewTimer(r.timeout)
	} else {
		t.Reset(r.timeout)
	}
	// Stopped before it goes back to the pool: since Go 1.23 a stopped or
	// reset timer delivers no stale tick.
	defer func() { t.Stop(); r.timers.Put(t) }()
	select {
	case res := <-req.done:
		return res.m, res.err
	case <-t.C:
		r.mu.Lock()
		req.gone = true // if not sent yet, it never will be
		delete(r.waiting, req.token)
		r.mu.Unlock()
		return nil, nats.ErrTimeout
	}
}

// send publishes the queued requests, each group in one write.
func (r *Requests) send() {
	defer close(r.stopped)
	group := make([]*request, 0, 64)
	for {
		select {
		case req := <-r.queue:
			// Let the callers that are runnable now queue theirs too.
			runtime.Gosched()
			group = append(group[:0], req)
		more:
			for len(group) < cap(group) {
				select {
				case req := <-r.queue:
					group = append(group, req)
				default:
					break more
				}
			}
		case <-r.quit:
			for {
				select {
				case req := <-r.queue:
					req.done <- resp{err: ErrStopped}
				default:
					return
				}
			}
		}
		// Registered before sent, and the reply subject set under the same
		// lock reply takes: a reply cannot come before its request is
		// waited for.
		r.mu.Lock()
		for _, req := range group {
			if !req.gone {
				r.register(req)
			}
		}
		r.mu.Unlock()
		for _, req := range group {
			if req.token == 0 {
				continue
			}
			if err := r.nc.PublishMsg(req.m); err != nil && r.forget(req) {
				req.done <- resp{err: err}
			}
		}
		clear(group) // no message kept alive until the next group
	}
}

// register gives req its token and reply subject and makes it wait for its
// reply; r.mu is held.
func (r *Requests) register(req *request) {
	r.last++
	req.token = r.last
	req.m.Reply = r.prefix + strconv.FormatUint(req.token, 10)
	r.waiting[req.token] = req
}

// reply hands a reply to its request; one that came after its caller gave
// up, or that no request of this process sent, is dropped.
func (r *Requests) reply(m *nats.Msg) {
	if len(m.Subject) <= len(r.prefix) {
		return
	}
	token, err := strconv.ParseUint(m.Subject[len(r.prefix):], 10, 64)
	if err != nil {
		return
	}
	noResponders := len(m.Data) == 0 && m.Header.Get("Status") == "503"
	r.mu.Lock()
	req := r.waiting[token]
	if req == nil {
		r.mu.Unlock()
		return
	}
	if req.fn != nil && noResponders && req.retries > 0 && !r.closed {
		req.retries--
		req.deadline = time.Now().Add(SendRetryWait + r.timeout)
		r.mu.Unlock()
		time.AfterFunc(SendRetryWait, func() { r.resend(req) })
		return
	}
	delete(r.waiting, token)
	r.mu.Unlock()
	var answer error
	if noResponders {
		m, answer = nil, nats.ErrNoResponders
	}
	if req.fn == nil {
		req.done <- resp{m: m, err: answer}
		return
	}
	r.finish(req, m, answer)
}

// Send sends m as a request at once, from the calling goroutine: it goes
// out before anything the caller writes on the connection after it. It sets
// m.Reply. done is called once, with the reply, or with nats.ErrTimeout,
// nats.ErrNoResponders (after SendRetries), nats.ErrDisconnected (the
// connection was lost before the reply came) or ErrStopped; it runs on the
// replies' goroutine (or the one timing requests out) and must not block.
// When Send returns an error, done is not called.
func (r *Requests) Send(m *nats.Msg, done func(*nats.Msg, error)) error {
	if err := r.slot(); err != nil {
		return err
	}
	req := &request{m: m, fn: done, retries: SendRetries}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		<-r.slots
		return ErrStopped
	}
	req.deadline = time.Now().Add(r.timeout)
	r.register(req)
	r.sending.Add(1)
	r.mu.Unlock()
	if err := r.nc.PublishMsg(m); err != nil {
		if r.forget(req) {
			<-r.slots
			r.sending.Done()
			return err
		}
		// Timed out or stopped meanwhile: done has its answer.
	}
	return nil
}

// PublishAsync is Send for a JetStream publish: done gets nil once the
// stream stored m (duplicate: it had it already), or the error
// jetstream.PublishMsgAsync reports for the same answer (PubAck;
// jetstream.ErrNoStreamResponse when no stream answered).
func (r *Requests) PublishAsync(m *nats.Msg, done func(duplicate bool, err error)) error {
	return r.Send(m, func(reply *nats.Msg, err error) {
		switch {
		case errors.Is(err, nats.ErrNoResponders):
			done(false, jetstream.ErrNoStreamResponse)
		case err != nil:
			done(false, err)
		default:
			done(PubAck(reply.Data))
		}
	})
}

// slot takes one of the MaxPending slots, waiting at most SendStallWait.
func (r *Requests) slot() error {
	select {
	case r.slots <- struct{}{}:
		return nil
	default:
	}
	t := time.NewTimer(SendStallWait)
	defer t.Stop()
	select {
	case r.slots <- struct{}{}:
		return nil
	case <-t.C:
		return ErrTooManyPending
	case <-r.quit:
		return ErrStopped
	}
}

// resend sends a request answered "no responders" again, if it still
// waits.
func (r *Requests) resend(req *request) {
	r.mu.Lock()
	waits := r.waiting[req.token] == req
	r.mu.Unlock()
	if !waits {
		return
	}
	if err := r.nc.PublishMsg(req.m); err != nil && r.forget(req) {
		r.finish(req, nil, err)
	}
}

// forget takes a request out of the waiting ones; false if something else
// (its reply, its timeout, Stop) took it first.
func (r *Requests) forget(req *request) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.waiting[req.token] != req {
		return false
	}
	delete(r.waiting, req.token)
	return true
}

// finish hands a Send's request its answer; the caller took it out of the
// waiting ones. Its slot is free before done runs; Stop waits until done
// has returned.
func (r *Requests) finish(req *request, m *nats.Msg, err error) {
	<-r.slots
	defer r.sending.Done()
	req.fn(m, err)
}

// sweep times out the Sends whose replies are late, a few times per
// timeout, and fails those awaiting a reply when the connection is lost
// (their replies are lost with it), as jetstream's PublishMsgAsync does.
func (r *Requests) sweep(lost chan nats.Status) {
	defer close(r.swept)
	defer r.nc.RemoveStatusListener(lost) // the channel given, though lost may be nil by then
	t := time.NewTicker(min(max(r.timeout/4, 10*time.Millisecond), time.Second))
	defer t.Stop()
	for {
		select {
		case now := <-t.C:
			r.expire(func(req *request) bool { return now.After(req.deadline) }, nats.ErrTimeout)
		case _, ok := <-lost:
			if !ok {
				lost = nil // closed: no more news
				continue
			}
			r.expire(anyRequest, nats.ErrDisconnected)
		case <-r.sweepQuit:
			return
		}
	}
}

func anyRequest(*request) bool { return true }

// expire finishes, with err, the Sends still waiting that match.
func (r *Requests) expire(match func(*request) bool, err error) {
	var late []*request
	r.mu.Lock()
	for token, req := range r.waiting {
		if req.fn != nil && match(req) {
			delete(r.waiting, token)
			late = append(late, req)
		}
	}
	r.mu.Unlock()
	for _, req := range late {
		r.finish(req, nil, err)
	}
}

// Stop ends the sending goroutine and the subscription; requests still
// queued fail with ErrStopped. Call it once no caller waits. Sends still
// awaiting their replies get them, or their timeouts, for at most the
// timeout; any left then end with ErrStopped.
func (r *Requests) Stop() error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	close(r.quit)
	<-r.stopped
	sent := make(chan struct{})
	go func() { r.sending.Wait(); close(sent) }()
	t := time.NewTimer(r.timeout)
	select {
	case <-sent:
	case <-t.C:
		r.expire(anyRequest, ErrStopped)
		<-sent // the callbacks running have returned
	}
	t.Stop()
	close(r.sweepQuit)
	<-r.swept
	err := r.sub.Unsubscribe()
	if errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrBadSubscription) {
		return nil // gone with the connection
	}
	return err
}

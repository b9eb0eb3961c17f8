package ingester

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"
)

// A request head carrying both Content-Length and Transfer-Encoding frames
// its body two ways. net/http accepts the pair: it deletes Content-Length
// and reads the body chunked (net/http/transfer.go fixLength, after RFC 9112
// §6.3: the pair "ought to be handled as an error"), so a proxy in front
// that frames by Content-Length and the ingester disagree on where a
// request ends, and a request hidden after the 0-chunk is served as the
// next one (request smuggling). By the time a handler runs the header is
// gone, so the connection's bytes are watched instead: framingListener
// marks a connection on which such a head arrived, and refuseAmbiguous
// answers 400 and closes it.

// framingListener wraps each accepted connection in a framingConn.
type framingListener struct{ net.Listener }

func (l framingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &framingConn{Conn: c}, nil
}

// framingConn scans what is read from it for request heads.
type framingConn struct {
	net.Conn
	mu        sync.Mutex // net/http never reads concurrently; cheap insurance
	scan      headScanner
	ambiguous atomic.Bool // sticky: nothing after such a head can be trusted
}

func (c *framingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.mu.Lock()
		if c.scan.scan(p[:n]) {
			c.ambiguous.Store(true)
		}
		c.mu.Unlock()
	}
	return n, err
}

// CloseWrite half-closes a TCP connection, as net/http does before closing
// one (the wrapper would otherwise hide the method).
func (c *framingConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// headScanner follows the lines of a byte stream and reports a block of
// lines ended by an empty line that holds both a Content-Length and a
// Transfer-Encoding line. A request head is such a block (net/http ends it
// at the first empty line too, LF or CRLF). Bodies are scanned as well:
// that can only raise a false alarm for a body crafted to hold such lines,
// on the sender's own connection, never hide a head. Form bodies hold no
// line feed, so the scan costs one IndexByte over them.
type headScanner struct {
	prefix [len("transfer-encoding:")]byte // the current line's first bytes, lower-cased
	n      int                             // bytes of the current line so far
	cl, te bool                            // the current block's header lines
}

func (s *headScanner) scan(p []byte) (ambiguous bool) {
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			s.take(p)
			return ambiguous
		}
		s.take(p[:i])
		if s.endLine() {
			ambiguous = true
		}
		p = p[i+1:]
	}
	return ambiguous
}

// take adds b to the current line.
func (s *headScanner) take(b []byte) {
	if s.n < len(s.prefix) {
		for j, c := range b[:min(len(b), len(s.prefix)-s.n)] {
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			s.prefix[s.n+j] = c
		}
	}
	s.n += len(b)
}

// endLine closes the current line and reports a finished ambiguous block.
func (s *headScanner) endLine() bool {
	line := s.prefix[:min(s.n, len(s.prefix))]
	empty := s.n == 0 || (s.n == 1 && line[0] == '\r')
	switch {
	case bytes.HasPrefix(line, []byte("content-length:")):
		s.cl = true
	case bytes.HasPrefix(line, []byte("transfer-encoding:")):
		s.te = true
	}
	s.n = 0
	if !empty {
		return false
	}
	both := s.cl && s.te
	s.cl, s.te = false, false
	return both
}

type framingKey struct{}

// connContext gives a connection's requests its framingConn.
func connContext(ctx context.Context, c net.Conn) context.Context {
	if fc, ok := c.(*framingConn); ok {
		return context.WithValue(ctx, framingKey{}, fc)
	}
	return ctx
}

// refuseAmbiguous answers 400 to a request arriving on a connection that
// carried a head with both Content-Length and Transfer-Encoding, and closes
// the connection, so nothing smuggled after it is served.
func (s *Service) refuseAmbiguous(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fc, ok := r.Context().Value(framingKey{}).(*framingConn)
		if !ok || !fc.ambiguous.Load() {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Connection", "close")
		code := reject(w, http.StatusBadRequest, "both Content-Length and Transfer-Encoding")
		s.metrics.request("none", code)
		s.log.Warn("webhook", zap.Int("status", code), zap.String("reason", "content_length_with_transfer_encoding"),
			zap.String("method", r.Method), zap.String("path", r.URL.Path))
	})
}

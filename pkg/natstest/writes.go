package natstest

import (
	"net"
	"sync/atomic"
)

// WriteCounter dials real TCP connections and counts the writes on them:
// give it to a client with nats.SetCustomDialer to see how many writes (each
// a system call) some traffic takes.
type WriteCounter struct{ writes atomic.Int64 }

// Dial implements nats.CustomDialer.
func (d *WriteCounter) Dial(network, address string) (net.Conn, error) {
	c, err := net.Dial(network, address)
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, writes: &d.writes}, nil
}

// Writes is the number of writes so far on every connection it dialed.
func (d *WriteCounter) Writes() int64 { return d.writes.Load() }

type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c *countingConn) Write(b []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(b)
}

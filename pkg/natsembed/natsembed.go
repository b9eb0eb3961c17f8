// Package natsembed starts an in-process nats-server with JetStream. It is
// the local default of `zen dev` (data under .zen/, client port 4222) and the
// server behind pkg/natstest.
package natsembed

import (
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Options configure an embedded server. The zero value listens on a random
// loopback port with JetStream in a directory the caller must set.
type Options struct {
	// Host to listen on; default 127.0.0.1.
	Host string
	// Port for clients; 0 means 4222, -1 a random free port.
	Port int
	// StoreDir is the JetStream file store; required.
	StoreDir string
	// ServerName names the server in `nats server ls`; default "zen-dev".
	ServerName string
	// HTTPPort enables the monitoring endpoint when > 0 (-1 random).
	HTTPPort int
	// ReadyTimeout bounds the wait for the server to accept clients (10 s).
	ReadyTimeout time.Duration
	// Logs sends the server's own log lines to stderr.
	Logs bool
}

// Start runs a server and waits until it accepts clients. The caller owns the
// server: call Shutdown and WaitForShutdown when done.
func Start(o Options) (*server.Server, error) {
	if o.StoreDir == "" {
		return nil, errors.New("natsembed: StoreDir is required")
	}
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	if o.ServerName == "" {
		o.ServerName = "zen-dev"
	}
	if o.ReadyTimeout == 0 {
		o.ReadyTimeout = 10 * time.Second
	}
	port := o.Port
	if port == 0 {
		port = 4222
	}
	opts := &server.Options{
		ServerName: o.ServerName,
		Host:       o.Host,
		Port:       port,
		JetStream:  true,
		StoreDir:   o.StoreDir,
		NoSigs:     true,
		HTTPHost:   o.Host,
		HTTPPort:   o.HTTPPort,
		// Large enough for a 1 MiB webhook body plus headers.
		MaxPayload: 8 << 20,
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("natsembed: new server: %w", err)
	}
	if o.Logs {
		ns.ConfigureLogger()
	}
	go ns.Start()
	if !ns.ReadyForConnections(o.ReadyTimeout) {
		ns.Shutdown()
		return nil, fmt.Errorf("natsembed: server on %s:%d not ready after %s", o.Host, port, o.ReadyTimeout)
	}
	return ns, nil
}

package natstest

import (
	"context"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"
	tcnats "github.com/testcontainers/testcontainers-go/modules/nats"
)

// startDocker runs nats in a container for users who have a Docker engine
// (ZEN_TEST_NATS=docker). Where none answers, the test is skipped with the
// reason: the same tests run against the embedded server by default.
func (s *Server) startDocker(tb testing.TB) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := testcontainers.NewDockerProvider(); err != nil {
		tb.Skipf("ZEN_TEST_NATS=docker but no Docker engine is reachable (%v); unset ZEN_TEST_NATS to run against the embedded server", err)
	}
	c, err := tcnats.Run(ctx, "nats:2.12-alpine", testcontainers.WithCmdArgs("-js"))
	if err != nil {
		tb.Skipf("ZEN_TEST_NATS=docker: cannot start a nats container (%v); unset ZEN_TEST_NATS to run against the embedded server", err)
	}
	url, err := c.ConnectionString(ctx)
	if err != nil {
		_ = c.Terminate(context.Background())
		tb.Fatalf("nats container URL: %v", err)
	}
	s.URL = url
	s.stop = func() { _ = testcontainers.TerminateContainer(c) }
	waitJetStream(tb, s.URL)
}

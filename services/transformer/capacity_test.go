package transformer_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/zen-twilio/zen/pkg/envconf"
	"github.com/zen-twilio/zen/pkg/natstest"
	"github.com/zen-twilio/zen/pkg/streams"
	"github.com/zen-twilio/zen/services/transformer"
)

// At start the transformer checks the streams against the NATS limits at
// the declared rate and warns, naming the variables (issue 22): here the
// shipped local defaults declared for 1,000/s on a 512 MiB server.
func TestStartupCapacityCheck(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	core, logs := observer.New(zapcore.InfoLevel)
	e.log = zap.New(core)
	r := envconf.New(envconf.MapLookup(map[string]string{"CAPACITY_EVENTS_PER_SECOND": "1000", "NATS_MEMORY_LIMIT": "536870912"}))
	capacity := streams.CapacityFromEnv(r)
	e.start(func(c *transformer.Config) { c.Capacity = capacity })
	natstest.CheckFor(t, 10*time.Second, func() error {
		var all []string
		for _, l := range logs.FilterMessageSnippet("CAPACITY").All() {
			all = append(all, fmt.Sprint(l.ContextMap()["warning"]))
		}
		if s := strings.Join(all, "\n"); !strings.Contains(s, "RAW_MAX_AGE, RAW_MAX_BYTES") || !strings.Contains(s, "NATS memory") {
			return fmt.Errorf("no CAPACITY warning naming RAW_MAX_AGE and the NATS memory yet: %q", s)
		}
		return nil
	})
}

package ingester_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/zen-twilio/zen/pkg/envconf"
	"github.com/zen-twilio/zen/pkg/natstest"
	"github.com/zen-twilio/zen/pkg/streams"
	"github.com/zen-twilio/zen/services/ingester"
)

// TestStartupCapacityCheck: the ingester, like the other stages, warns at
// start when the local defaults cannot hold 1,000/s on a 512 MiB NATS,
// naming the variables to change (issue 22).
func TestStartupCapacityCheck(t *testing.T) {
	r := envconf.New(envconf.MapLookup(map[string]string{"CAPACITY_EVENTS_PER_SECOND": "1000", "NATS_MEMORY_LIMIT": "536870912"}))
	capacity := streams.CapacityFromEnv(r)
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	e := start(t, func(c *ingester.Config) { c.Capacity = capacity })
	natstest.CheckFor(t, 10*time.Second, func() error {
		var all []string
		for _, l := range e.logs.FilterMessageSnippet("CAPACITY").All() {
			all = append(all, fmt.Sprint(l.ContextMap()["warning"]))
		}
		if s := strings.Join(all, "\n"); !strings.Contains(s, "RAW_MAX_AGE, RAW_MAX_BYTES") || !strings.Contains(s, "NATS memory") {
			return fmt.Errorf("no CAPACITY warning naming RAW_MAX_AGE and the NATS memory yet: %q", s)
		}
		return nil
	})
}

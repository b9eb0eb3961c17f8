package main

import (
	"strings"
	"testing"

	"github.com/zen-twilio/zen/pkg/streams"
)

// TestShippedIsWhatDeployShips: make capacity projects the configuration
// deploy/k8s/base gives the services, not a copy of it.
func TestShippedIsWhatDeployShips(t *testing.T) {
	p, err := loadShipped("../../deploy/k8s/base/kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if p.capacity.EventsPerSecond != 1000 || p.capacity.Limits.MaxMemory != 3<<30 {
		t.Errorf("zen-capacity: %+v, want 1000/s and a 3Gi NATS_MEMORY_LIMIT", p.capacity)
	}
	if p.cfg.RawMaxBytes != 80<<30 || p.cfg.DedupeTTL.String() != "20m0s" {
		t.Errorf("zen-streams: RAW_MAX_BYTES %d, DEDUPE_TTL %s; want 80 GiB and 20m", p.cfg.RawMaxBytes, p.cfg.DedupeTTL)
	}
	table := p.projection(streams.MeasuredCosts)
	if !strings.Contains(table, "| 1000 | 1646 MiB | 54% |") {
		t.Errorf("projection at 1,000/s is not the one docs/capacity.md quotes:\n%s", table)
	}
}

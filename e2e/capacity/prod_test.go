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
	table := p.projection("MeasuredCosts", streams.MeasuredCosts)
	if !strings.Contains(table, "| 1000 | 1646 MiB | 54% |") {
		t.Errorf("projection at 1,000/s is not the one docs/capacity.md quotes:\n%s", table)
	}
}

// TestCostsAreMarginal: a stream's messages, whose RSS does not grow with
// their count (the server caches a bounded part), cost ~0 per message, and
// a dedupe key what one more key adds, not the average over a fixed base.
func TestCostsAreMarginal(t *testing.T) {
	const mib = 1 << 20
	results := []result{
		{name: "dedupe_key", n: 1_000_000, rssBefore: 17 * mib, rssAfter: 395 * mib, storeB: 195_000_000},
		{name: "dedupe_key", n: 2_000_000, rssBefore: 17 * mib, rssAfter: 753 * mib, storeB: 390_000_000},
		{name: "raw_message", n: 1_000_000, rssBefore: 17 * mib, rssAfter: 73 * mib, storeB: 867_000_000},
		{name: "raw_message", n: 2_000_000, rssBefore: 17 * mib, rssAfter: 67 * mib, storeB: 1_734_000_000},
	}
	k := costsFrom(results)
	if want := int64((753 - 395) * mib / 1_000_000); k.DedupeKeyMemory < want-1 || k.DedupeKeyMemory > want+1 {
		t.Errorf("dedupe key memory %d B, want the slope %d B", k.DedupeKeyMemory, want)
	}
	if k.RawMessageMemory != 0 || k.RawMessageDisk != 867 || k.DedupeKeyDisk != 195 {
		t.Errorf("raw message %d B memory, %d B disk; dedupe key %d B disk: want 0, 867, 195", k.RawMessageMemory, k.RawMessageDisk, k.DedupeKeyDisk)
	}
}

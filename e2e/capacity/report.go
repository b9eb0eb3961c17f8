package main

import (
	"fmt"
	"runtime"
	"strings"
	"time"

	"github.com/zen-twilio/zen/pkg/streams"
)

// rates are the sustained webhook rates the projection is made for.
var rates = []float64{100, 1000, 5000}

// render writes the measurement table, the costs it implies and the
// projection of the shipped defaults at each rate.
func render(results []result, sizes []int, prod shipped) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n## make capacity — %s\n\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(&b, "nats-server process (bin/nats-server), file storage, default GOGC; %d CPUs, %s. RSS sampled 3 s after the object was created and again after the entries were published and the server sat idle. Sizes: %v.\n\n",
		runtime.NumCPU(), runtime.Version(), sizes)
	b.WriteString("| entry | entries | RSS before | RSS after | memory per entry | store bytes per entry | publish time |\n|---|---|---|---|---|---|---|\n")
	for _, r := range results {
		fmt.Fprintf(&b, "| %s | %d | %s | %s | %.0f B | %.0f B | %s |\n", r.name, r.n, streams.MiB(r.rssBefore), streams.MiB(r.rssAfter),
			r.memPerEntry(), r.diskPerEntry(), r.took.Round(time.Second))
	}
	b.WriteString("\nLinearity (memory per entry at the larger size / at the smaller):\n\n")
	for name, rs := range byName(results) {
		if len(rs) >= 2 && rs[0].memPerEntry() > 0 {
			fmt.Fprintf(&b, "- %s: %.2f\n", name, rs[len(rs)-1].memPerEntry()/rs[0].memPerEntry())
		}
	}
	k := costsFrom(results)
	fmt.Fprintf(&b, "\nCosts at the larger size (the duplicate-window entry is raw_message_in_duplicate_window − raw_message): %+v\n", k)
	local := streams.DefaultConfig()
	horizons := local
	horizons.RawMaxBytes, horizons.EventsMaxBytes, horizons.AttemptsMaxBytes, horizons.DLQMaxBytes, horizons.DedupeMaxBytes = 0, 0, 0, 0, 0
	b.WriteString(projection("the shipped horizons ("+describe(local)+") without byte bounds: what the bounds must hold", horizons, k))
	b.WriteString(projection("pkg/streams.MeasuredCosts, the same horizons without byte bounds", horizons, streams.MeasuredCosts))
	b.WriteString(projection("the shipped local defaults, byte bounds included (sized for streams.DefaultEventsPerSecond)", local, k))
	b.WriteString(prod.projection(k))
	return b.String()
}

// shipped is the production configuration deploy/k8s ships.
type shipped struct {
	path     string
	cfg      streams.Config
	capacity streams.Capacity
}

// projection is the production configuration's steady state at each
// rate, with the costs measured in this run, against the nats container's
// memory limit it declares (NATS_MEMORY_LIMIT).
func (p shipped) projection(k streams.Costs) string {
	var b strings.Builder
	limit := p.capacity.Limits.MaxMemory
	fmt.Fprintf(&b, "\nSteady state per replica, the shipped production configuration (%s: ConfigMaps zen-streams and zen-capacity; %s), byte bounds included, costs measured in this run:\n\n", p.path, describe(p.cfg))
	fmt.Fprintf(&b, "| events/s | NATS memory | of NATS_MEMORY_LIMIT (%s) | JetStream disk | largest memory part |\n|---|---|---|---|---|\n", streams.MiB(limit))
	for _, r := range rates {
		f := streams.Estimate(p.cfg, r, k)
		fmt.Fprintf(&b, "| %.0f | %s | %.0f%% | %s | %s |\n", r, streams.MiB(f.Memory), 100*float64(f.Memory)/float64(limit), streams.MiB(f.Disk), biggest(f))
	}
	return b.String()
}

// describe names cfg's horizons.
func describe(c streams.Config) string {
	return fmt.Sprintf("raw %s, events %s, attempts %s, dedupe %s (%s), duplicate windows %s/%s",
		c.RawMaxAge, c.EventsMaxAge, c.AttemptsMaxAge, c.DedupeTTL, c.DedupeLongTTL, c.RawDuplicateWindow, c.EventsDuplicateWindow)
}

func projection(title string, cfg streams.Config, k streams.Costs) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\nSteady state per replica, %s:\n\n| events/s | NATS memory | JetStream disk | largest memory part |\n|---|---|---|---|\n", title)
	for _, r := range rates {
		f := streams.Estimate(cfg, r, k)
		fmt.Fprintf(&b, "| %.0f | %s | %s | %s |\n", r, streams.MiB(f.Memory), streams.MiB(f.Disk), biggest(f))
	}
	return b.String()
}

func biggest(f streams.Footprint) string {
	var p streams.Part
	for _, q := range f.Parts {
		if q.Memory > p.Memory {
			p = q
		}
	}
	return fmt.Sprintf("%s: %s", p.Name, streams.MiB(p.Memory))
}

func byName(results []result) map[string][]result {
	m := map[string][]result{}
	for _, r := range results {
		m[r.name] = append(m[r.name], r)
	}
	return m
}

// costsFrom turns the largest measurement of each scenario into Costs;
// scenarios not measured keep pkg/streams.MeasuredCosts.
func costsFrom(results []result) streams.Costs {
	k := streams.MeasuredCosts
	last := map[string]result{}
	for _, r := range results {
		last[r.name] = r
	}
	per := func(name string, mem, disk *int64) {
		if r, ok := last[name]; ok {
			*mem = int64(r.memPerEntry() + 0.5)
			if disk != nil {
				*disk = int64(r.diskPerEntry() + 0.5)
			}
		}
	}
	per("dedupe_key", &k.DedupeKeyMemory, &k.DedupeKeyDisk)
	per("raw_message", &k.RawMessageMemory, &k.RawMessageDisk)
	per("event_message", &k.EventMessageMemory, &k.EventMessageDisk)
	per("attempt_record", &k.AttemptMemory, &k.AttemptDisk)
	if w, ok := last["raw_message_in_duplicate_window"]; ok {
		if r, ok := last["raw_message"]; ok {
			k.DuplicateMemory = int64(w.memPerEntry() - r.memPerEntry() + 0.5)
		}
	}
	if r, ok := last["raw_message"]; ok {
		k.BaseMemory = r.rssBefore
	}
	return k
}

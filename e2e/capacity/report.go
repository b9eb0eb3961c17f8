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
	fmt.Fprintf(&b, "\nCosts (memory: the RSS slope between the sizes; disk: the larger size; the duplicate-window entry is raw_message_in_duplicate_window − raw_message): %+v\n", k)
	local := streams.DefaultConfig()
	horizons := local
	horizons.RawMaxBytes, horizons.EventsMaxBytes, horizons.AttemptsMaxBytes, horizons.DLQMaxBytes, horizons.DedupeMaxBytes = 0, 0, 0, 0, 0
	b.WriteString(projection("the shipped horizons ("+describe(local)+") without byte bounds: what the bounds must hold", horizons, k))
	b.WriteString(projection("pkg/streams.MeasuredCosts, the same horizons without byte bounds", horizons, streams.MeasuredCosts))
	b.WriteString(projection("the shipped local defaults, byte bounds included (sized for streams.DefaultEventsPerSecond)", local, k))
	b.WriteString(prod.projection("costs measured in this run", k))
	b.WriteString(prod.projection("pkg/streams.MeasuredCosts (what deploy/capacity_test.go holds under 75%)", streams.MeasuredCosts))
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
func (p shipped) projection(costs string, k streams.Costs) string {
	var b strings.Builder
	limit := p.capacity.Limits.MaxMemory
	fmt.Fprintf(&b, "\nSteady state per replica, the shipped production configuration (%s: ConfigMaps zen-streams and zen-capacity; %s), byte bounds included, %s:\n\n", p.path, describe(p.cfg), costs)
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

// costsFrom turns the measurements into Costs: memory per entry is the
// slope between the two sizes (what one more entry costs; a stream's
// messages come out near zero, since the server keeps a bounded cache of
// them, which the average per entry at one size would extrapolate into
// gigabytes), disk per entry the largest size's average. Scenarios not
// measured keep pkg/streams.MeasuredCosts.
func costsFrom(results []result) streams.Costs {
	k := streams.MeasuredCosts
	runs := byName(results)
	per := func(name string, mem, disk *int64) {
		if rs := runs[name]; len(rs) > 0 {
			*mem = int64(marginal(rs) + 0.5)
			if disk != nil {
				*disk = int64(rs[len(rs)-1].diskPerEntry() + 0.5)
			}
		}
	}
	per("dedupe_key", &k.DedupeKeyMemory, &k.DedupeKeyDisk)
	per("raw_message", &k.RawMessageMemory, &k.RawMessageDisk)
	per("event_message", &k.EventMessageMemory, &k.EventMessageDisk)
	per("attempt_record", &k.AttemptMemory, &k.AttemptDisk)
	if w, r := runs["raw_message_in_duplicate_window"], runs["raw_message"]; len(w) > 0 && len(r) > 0 {
		k.DuplicateMemory = int64(max(marginal(w)-marginal(r), 0) + 0.5)
	}
	if r := runs["raw_message"]; len(r) > 0 {
		k.BaseMemory = r[0].rssBefore
	}
	return k
}

// marginal is the memory one more entry costs: the RSS slope between the
// smallest and the largest size (never below 0: RSS noise), or the
// average when only one size was measured.
func marginal(rs []result) float64 {
	a, b := rs[0], rs[len(rs)-1]
	if a.n == b.n {
		return b.memPerEntry()
	}
	return max(float64(b.rssAfter-a.rssAfter)/float64(b.n-a.n), 0)
}

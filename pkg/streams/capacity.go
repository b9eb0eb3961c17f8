package streams

import (
	"fmt"
	"time"
)

// Costs are what one piece of pipeline state costs a nats-server replica,
// measured by `make capacity` (e2e/capacity, a real nats-server process,
// at 1M and 2M entries; bench/results.md). Memory is resident memory (RSS)
// growth per entry, disk is store bytes per message.
type Costs struct {
	BaseMemory int64 // RSS of an idle server holding the empty objects
	// StreamCacheMemory is what a written stream holds whatever its size
	// (the block cache): counted once per stream. A stored message itself
	// costs next to nothing (RawMessageMemory and the like, the slope).
	StreamCacheMemory  int64
	DedupeKeyMemory    int64 // one zen_dedupe key (a distinct subject of the KV stream)
	DedupeKeyDisk      int64
	DuplicateMemory    int64 // one Nats-Msg-Id inside a stream's duplicate window
	RawMessageMemory   int64 // one stored TWILIO_RAW message (few subjects)
	RawMessageDisk     int64
	EventMessageMemory int64
	EventMessageDisk   int64
	AttemptMemory      int64
	AttemptDisk        int64
}

// MeasuredCosts are the figures of bench/results.md ("capacity"), rounded
// up. Re-run `make capacity` after a nats-server upgrade and update them.
var MeasuredCosts = Costs{
	BaseMemory:         20 << 20,
	StreamCacheMemory:  32 << 20,
	DedupeKeyMemory:    430,
	DedupeKeyDisk:      196,
	DuplicateMemory:    320,
	RawMessageMemory:   1,
	RawMessageDisk:     867,
	EventMessageMemory: 1,
	EventMessageDisk:   1453,
	AttemptMemory:      1,
	AttemptDisk:        481,
}

// LongTypeShare is the share of events whose type keeps its dedupe key
// DedupeLongTTL (verification.status) assumed by the estimate: 5%.
const LongTypeShare = 0.05

// AttemptsPerEvent is how many ZEN_ATTEMPTS records one event costs in the
// estimate: the delivery, plus headroom for retries.
const AttemptsPerEvent = 1.2

// Footprint is the steady-state state of the pipeline on one nats-server
// replica (every stream is on every replica: R1 or R3).
type Footprint struct {
	Memory int64
	Disk   int64
	// Parts names each contribution, for the warning and the docs.
	Parts []Part
}

// Part is one contribution to a [Footprint].
type Part struct {
	Name    string // e.g. "zen_dedupe keys"
	Entries int64  // entries held at steady state
	// Wanted is rate × horizon: more than Entries when the object's byte
	// bound is reached first (the stream refuses writes from then on).
	Wanted int64
	Memory int64
	Disk   int64
}

// Estimate computes the steady-state footprint of cfg at a sustained rate of
// eventsPerSecond webhooks (one raw request, one event each). A stream
// bounded by bytes holds at most its MaxBytes; by age, rate × age.
func Estimate(cfg Config, eventsPerSecond float64, k Costs) Footprint {
	f := Footprint{Memory: k.BaseMemory + 5*k.StreamCacheMemory} // four streams and the bucket
	held := func(age time.Duration, perSecond float64) int64 {
		return int64(age.Seconds() * perSecond)
	}
	add := func(name string, n, mem, disk, maxBytes int64) {
		p := Part{Name: name, Entries: n, Wanted: n}
		if maxBytes > 0 && disk > 0 && n*disk > maxBytes {
			p.Entries = maxBytes / disk
		}
		p.Memory, p.Disk = p.Entries*mem, p.Entries*disk
		f.Parts = append(f.Parts, p)
		f.Memory += p.Memory
		f.Disk += p.Disk
	}
	r := eventsPerSecond
	add("TWILIO_RAW messages (RAW_MAX_AGE, RAW_MAX_BYTES)", held(cfg.RawMaxAge, r), k.RawMessageMemory, k.RawMessageDisk, cfg.RawMaxBytes)
	add("TWILIO_RAW duplicate window (RAW_DUPLICATE_WINDOW)", held(cfg.RawDuplicateWindow, r), k.DuplicateMemory, 0, 0)
	add("ZEN_EVENTS messages (EVENTS_MAX_AGE, EVENTS_MAX_BYTES)", held(cfg.EventsMaxAge, r), k.EventMessageMemory, k.EventMessageDisk, cfg.EventsMaxBytes)
	add("ZEN_EVENTS duplicate window (EVENTS_DUPLICATE_WINDOW)", held(cfg.EventsDuplicateWindow, r), k.DuplicateMemory, 0, 0)
	add("ZEN_ATTEMPTS records (ATTEMPTS_MAX_AGE, ATTEMPTS_MAX_BYTES)", held(cfg.AttemptsMaxAge, r*AttemptsPerEvent), k.AttemptMemory, k.AttemptDisk, cfg.AttemptsMaxBytes)
	keys := held(cfg.DedupeTTL, r*(1-LongTypeShare)) + held(cfg.DedupeLongTTL, r*LongTypeShare)
	add("zen_dedupe keys (DEDUPE_TTL, DEDUPE_LONG_TTL, DEDUPE_MAX_BYTES)", keys, k.DedupeKeyMemory, k.DedupeKeyDisk, cfg.DedupeMaxBytes)
	return f
}

// Limits are a server's JetStream limits and its container's.
type Limits struct {
	// MaxMemory is the memory the server may use (the container limit).
	MaxMemory int64
	// MaxStore is the server's max_file_store (JetStream's reserved
	// storage, which the server reports in its account info).
	MaxStore int64
}

// CapacityWarnings returns one line per limit the footprint exceeds at the
// given fraction (e.g. 0.75), naming the variables that change it. None
// when it fits or a limit is unknown (0).
func CapacityWarnings(f Footprint, l Limits, fraction float64) []string {
	var w []string
	if l.MaxMemory > 0 && float64(f.Memory) > fraction*float64(l.MaxMemory) {
		w = append(w, fmt.Sprintf("steady-state NATS memory %s exceeds %.0f%% of %s: lower DEDUPE_TTL, RAW_DUPLICATE_WINDOW or EVENTS_DUPLICATE_WINDOW, or raise the NATS memory limit (%s)",
			MiB(f.Memory), fraction*100, MiB(l.MaxMemory), largest(f, true)))
	}
	for _, p := range f.Parts {
		if p.Wanted > p.Entries {
			w = append(w, fmt.Sprintf("%s: the horizon holds %d entries but the byte bound stops it at %d; a full stream refuses writes (TWILIO_RAW: the ingester answers 503; zen_dedupe: keys are not recorded and duplicates can pass): raise the bound or lower the age",
				p.Name, p.Wanted, p.Entries))
		}
	}
	if l.MaxStore > 0 && float64(f.Disk) > fraction*float64(l.MaxStore) {
		w = append(w, fmt.Sprintf("steady-state JetStream storage %s exceeds %.0f%% of max_file_store %s: lower RAW_MAX_AGE/RAW_MAX_BYTES, EVENTS_MAX_AGE/EVENTS_MAX_BYTES or ATTEMPTS_MAX_AGE, or raise max_file_store and the volume (%s)",
			MiB(f.Disk), fraction*100, MiB(l.MaxStore), largest(f, false)))
	}
	return w
}

// largest names the biggest contribution to memory or disk.
func largest(f Footprint, memory bool) string {
	var best Part
	for _, p := range f.Parts {
		if memory && p.Memory > best.Memory || !memory && p.Disk > best.Disk {
			best = p
		}
	}
	v := best.Disk
	if memory {
		v = best.Memory
	}
	return fmt.Sprintf("largest: %s, %d entries, %s", best.Name, best.Entries, MiB(v))
}

// MiB formats n bytes as MiB.
func MiB(n int64) string { return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20)) }

// Package gctune sets the garbage collector's defaults of the services.
//
// The stages allocate short-lived buffers per message and keep little live
// heap (about 5 MiB), so Go's default GOGC=100 collects very often. GOGC=400
// cut CPU per event by about a quarter in `make bench` (bench/results.md)
// while peak RSS stayed near 30 MiB, under the 64 MiB target.
//
// GOGC=400 lets the heap grow to five times the live heap before a
// collection, so a burst of large messages could take a container past its
// memory limit before the collector runs. In a container the soft memory
// limit closes that gap: the Deployments set CONTAINER_MEMORY_LIMIT from the
// container's limits.memory (a resourceFieldRef, divisor 1, so in bytes) and
// Apply sets the runtime's memory limit to [MemoryLimitRatio] of it; the
// collector then runs harder as the heap nears the limit, whatever GOGC
// says. The other 10% is headroom for what the limit does not count well:
// goroutine stacks, the runtime's own structures, memory not yet returned to
// the kernel. Why not GOMEMLIMIT from the resourceFieldRef directly: Go reads
// GOMEMLIMIT in bytes (or with a unit suffix), so the field gives either the
// whole limit with no headroom (divisor 1) or a number Go takes as bytes
// (divisor 1Mi gives "256", 256 bytes).
//
// An explicit GOGC or GOMEMLIMIT in the environment wins: the runtime has
// read them at start-up, and Apply leaves them alone.
package gctune

import (
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
)

// DefaultGOGC is the GC percentage the services run with unless GOGC is set.
const DefaultGOGC = 400

// MemoryLimitVar is the variable holding the container's memory limit in
// bytes (deploy/k8s: resourceFieldRef limits.memory, divisor "1").
const MemoryLimitVar = "CONTAINER_MEMORY_LIMIT"

// MemoryLimitRatio is the share of the container's memory limit Apply gives
// the Go runtime as its soft memory limit.
const MemoryLimitRatio = 0.9

// Vars lists the environment variables Apply reads (the runtime reads GOGC
// and GOMEMLIMIT itself; Apply only checks whether they are set).
func Vars() []string { return []string{"GOGC", "GOMEMLIMIT", MemoryLimitVar} }

// Apply sets the default GC percentage unless GOGC is set, and the soft
// memory limit from CONTAINER_MEMORY_LIMIT unless GOMEMLIMIT is set. It
// returns an error naming the variable when CONTAINER_MEMORY_LIMIT is not a
// positive number of bytes, and then changes nothing. Call it once, at
// start-up, before the work begins.
func Apply() error { return apply(os.LookupEnv) }

func apply(lookup func(string) (string, bool)) error {
	limit, err := MemoryLimit(lookup)
	if err != nil {
		return err
	}
	if _, set := lookup("GOGC"); !set {
		debug.SetGCPercent(DefaultGOGC)
	}
	if limit > 0 {
		debug.SetMemoryLimit(limit)
	}
	return nil
}

// MemoryLimit returns the soft memory limit Apply sets, in bytes:
// [MemoryLimitRatio] of CONTAINER_MEMORY_LIMIT, or 0 (none) when that is
// unset or GOMEMLIMIT is set.
func MemoryLimit(lookup func(string) (string, bool)) (int64, error) {
	if _, set := lookup("GOMEMLIMIT"); set {
		return 0, nil
	}
	v, ok := lookup(MemoryLimitVar)
	if !ok || v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("env var `%s` must be the container's memory limit in bytes (a positive integer), got %q", MemoryLimitVar, v)
	}
	return int64(float64(n) * MemoryLimitRatio), nil
}

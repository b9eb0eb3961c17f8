// Package gctune sets the garbage collector's defaults of the services.
//
// The stages allocate short-lived buffers per message and keep little live
// heap (about 5 MiB), so Go's default GOGC=100 collects very often. GOGC=400
// cut CPU per event by about a quarter in `make bench` (bench/results.md)
// while peak RSS stayed near 30 MiB, under the 64 MiB target. An explicit
// GOGC or GOMEMLIMIT in the environment wins.
package gctune

import (
	"os"
	"runtime/debug"
)

// DefaultGOGC is the GC percentage the services run with unless GOGC is set.
const DefaultGOGC = 400

// Apply sets the default GC percentage unless GOGC is set.
func Apply() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(DefaultGOGC)
	}
}

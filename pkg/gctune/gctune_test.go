package gctune

import (
	"math"
	"runtime/debug"
	"strings"
	"testing"
)

func lookup(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := env[k]; return v, ok }
}

func TestMemoryLimit(t *testing.T) {
	t.Parallel()
	const mi = 1 << 20
	for _, tc := range []struct {
		name    string
		env     map[string]string
		want    int64
		wantErr string
	}{
		{name: "unset", env: nil, want: 0},
		{name: "empty", env: map[string]string{MemoryLimitVar: ""}, want: 0},
		// The stages' limit in deploy/k8s: 256Mi → 230.4 MiB.
		{name: "256Mi", env: map[string]string{MemoryLimitVar: "268435456"}, want: 241591910},
		{name: "GOMEMLIMIT wins", env: map[string]string{MemoryLimitVar: "268435456", "GOMEMLIMIT": "100MiB"}, want: 0},
		{name: "not a number", env: map[string]string{MemoryLimitVar: "256Mi"}, wantErr: "`CONTAINER_MEMORY_LIMIT` must be"},
		{name: "zero", env: map[string]string{MemoryLimitVar: "0"}, wantErr: `got "0"`},
		{name: "negative", env: map[string]string{MemoryLimitVar: "-1"}, wantErr: `got "-1"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := MemoryLimit(lookup(tc.env))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("MemoryLimit() error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("MemoryLimit() = %d (%.1f MiB), want %d", got, float64(got)/mi, tc.want)
			}
		})
	}
}

// TestApply changes the process's GC settings, so it is not parallel and
// restores them.
func TestApply(t *testing.T) {
	oldPct := debug.SetGCPercent(100)
	oldLimit := debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() { debug.SetGCPercent(oldPct); debug.SetMemoryLimit(oldLimit) })

	if err := apply(lookup(map[string]string{MemoryLimitVar: "268435456"})); err != nil {
		t.Fatal(err)
	}
	if got := debug.SetGCPercent(-1); got != DefaultGOGC {
		t.Errorf("GC percent = %d, want %d", got, DefaultGOGC)
	}
	debug.SetGCPercent(100)
	if got, want := debug.SetMemoryLimit(-1), int64(241591910); got != want {
		t.Errorf("memory limit = %d, want %d (90%% of 256 MiB)", got, want)
	}

	// An explicit GOGC and GOMEMLIMIT are the runtime's: left alone.
	debug.SetMemoryLimit(math.MaxInt64)
	if err := apply(lookup(map[string]string{"GOGC": "100", "GOMEMLIMIT": "1GiB", MemoryLimitVar: "268435456"})); err != nil {
		t.Fatal(err)
	}
	if got := debug.SetGCPercent(-1); got != 100 {
		t.Errorf("with GOGC set, GC percent = %d, want 100 (unchanged)", got)
	}
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Errorf("with GOMEMLIMIT set, memory limit = %d, want unchanged", got)
	}

	// A bad value changes nothing and names the variable.
	debug.SetGCPercent(100)
	err := apply(lookup(map[string]string{MemoryLimitVar: "lots"}))
	if err == nil || !strings.Contains(err.Error(), MemoryLimitVar) {
		t.Fatalf("apply(bad) = %v, want an error naming %s", err, MemoryLimitVar)
	}
	if got := debug.SetGCPercent(-1); got != 100 {
		t.Errorf("after a bad value, GC percent = %d, want 100 (unchanged)", got)
	}
}

package streams_test

import (
	"context"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/zen-twilio/zen/pkg/envconf"
	"github.com/zen-twilio/zen/pkg/natstest"
	"github.com/zen-twilio/zen/pkg/streams"
)

// The start-up check names the variables to change when the configured
// horizons do not fit the declared limits, and is silent when they do.
func TestCheckCapacityNamesTheVariables(t *testing.T) {
	t.Parallel()
	srv := natstest.Run(t)
	js := srv.JetStream(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		env  map[string]string
		want []string // substrings of the warnings, none when empty
	}{
		// The shipped defaults at their declared rate, on a laptop with 1 GiB
		// for NATS and a 10 GB store: they hold their horizons.
		{"shipped defaults", map[string]string{"NATS_MEMORY_LIMIT": "1073741824", "NATS_MAX_STORE": "10000000000"}, nil},
		{"shipped defaults at 1000/s", map[string]string{"CAPACITY_EVENTS_PER_SECOND": "1000", "NATS_MEMORY_LIMIT": "1073741824", "NATS_MAX_STORE": "10000000000"},
			[]string{"RAW_MAX_AGE, RAW_MAX_BYTES", "EVENTS_MAX_AGE, EVENTS_MAX_BYTES"}},
		{"fits", map[string]string{"CAPACITY_EVENTS_PER_SECOND": "2", "RAW_MAX_AGE": "24h", "EVENTS_MAX_AGE": "24h", "ATTEMPTS_MAX_AGE": "24h", "NATS_MEMORY_LIMIT": "536870912", "NATS_MAX_STORE": "2000000000"}, nil},
		{"a week of dedupe keys at 1000/s", map[string]string{"CAPACITY_EVENTS_PER_SECOND": "1000", "DEDUPE_TTL": "168h", "NATS_MEMORY_LIMIT": "2147483648", "NATS_MAX_STORE": "1000000000000"},
			[]string{"DEDUPE_TTL", "zen_dedupe keys", "duplicates can pass"}},
		{"no byte bounds, a week at 1000/s", map[string]string{"CAPACITY_EVENTS_PER_SECOND": "1000", "RAW_MAX_BYTES": "0", "EVENTS_MAX_BYTES": "0", "ATTEMPTS_MAX_BYTES": "0",
			"NATS_MEMORY_LIMIT": "1099511627776", "NATS_MAX_STORE": "9000000000"}, []string{"RAW_MAX_AGE/RAW_MAX_BYTES", "max_file_store"}},
		{"memory limit not declared", map[string]string{"NATS_MAX_STORE": "1000000000000"}, []string{"NATS_MEMORY_LIMIT is not set"}},
		{"off", map[string]string{"CAPACITY_EVENTS_PER_SECOND": "0", "DEDUPE_TTL": "168h"}, nil},
	} {
		r := envconf.New(envconf.MapLookup(tc.env))
		cfg, c := streams.ConfigFromEnv(r), streams.CapacityFromEnv(r)
		if err := r.Err(); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		w, err := streams.CheckCapacity(ctx, js, cfg, c)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		got := strings.Join(w, "\n")
		if len(tc.want) == 0 && got != "" {
			t.Errorf("%s: warnings %q, want none", tc.name, got)
		}
		for _, s := range tc.want {
			if !strings.Contains(got, s) {
				t.Errorf("%s: warnings %q do not name %q", tc.name, got, s)
			}
		}
	}
}

// DefaultConfig reaches every horizon before its byte bound at
// DefaultEventsPerSecond, the rate the check assumes when none is declared.
func TestShippedDefaultsHoldTheirHorizons(t *testing.T) {
	t.Parallel()
	f := streams.Estimate(streams.DefaultConfig(), streams.DefaultEventsPerSecond, streams.MeasuredCosts)
	for _, p := range f.Parts {
		if p.Entries < p.Wanted {
			t.Errorf("%s: the byte bound stops at %d entries, the horizon wants %d at %d events/s", p.Name, p.Entries, p.Wanted, streams.DefaultEventsPerSecond)
		}
	}
}

// A service's start-up check logs each misfit at Warn, naming the
// variables, and a missing memory limit at Info only (a laptop has none).
func TestWarnCapacityLogsEachMisfit(t *testing.T) {
	t.Parallel()
	srv := natstest.Run(t)
	js := srv.JetStream(t)
	for _, tc := range []struct {
		name  string
		env   map[string]string
		warns []string
		infos int
	}{
		{"shipped defaults", nil, nil, 1},
		{"shipped defaults at 1000/s in 512 MiB", map[string]string{"CAPACITY_EVENTS_PER_SECOND": "1000", "NATS_MEMORY_LIMIT": "536870912"},
			[]string{"RAW_MAX_AGE, RAW_MAX_BYTES", "EVENTS_MAX_AGE, EVENTS_MAX_BYTES", "NATS memory"}, 0},
	} {
		r := envconf.New(envconf.MapLookup(tc.env))
		cfg, c := streams.ConfigFromEnv(r), streams.CapacityFromEnv(r)
		if err := r.Err(); err != nil {
			t.Fatal(err)
		}
		core, logs := observer.New(zapcore.InfoLevel)
		streams.WarnCapacity(context.Background(), js, cfg, c, zap.New(core))
		var warns []string
		for _, e := range logs.FilterLevelExact(zapcore.WarnLevel).All() {
			warns = append(warns, e.ContextMap()["warning"].(string))
		}
		all := strings.Join(warns, "\n")
		for _, w := range tc.warns {
			if !strings.Contains(all, w) {
				t.Errorf("%s: no warning names %s; warnings:\n%s", tc.name, w, all)
			}
		}
		if len(tc.warns) == 0 && len(warns) > 0 {
			t.Errorf("%s: want no warning, got:\n%s", tc.name, all)
		}
		if got := logs.FilterLevelExact(zapcore.InfoLevel).Len(); got != tc.infos {
			t.Errorf("%s: %d info lines, want %d", tc.name, got, tc.infos)
		}
	}
}

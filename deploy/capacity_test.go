package deploy

import (
	"fmt"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	corev1 "k8s.io/api/core/v1"

	"github.com/zen-twilio/zen/pkg/envconf"
	"github.com/zen-twilio/zen/pkg/streams"
)

// minRate is the least rate each overlay must declare (issue 22: prod
// holds 1,000 webhooks/s sustained).
var minRate = map[string]int{"prod": 1000, "dev": 2}

// TestCapacityFitsAtTheSizedRate: no timing, the arithmetic of issue 22.
// For each overlay's shipped stream settings (ConfigMap zen-streams, read
// by pkg/streams.ConfigFromEnv as the services read it) and the costs
// `make capacity` measured (pkg/streams.MeasuredCosts), the steady-state
// NATS memory at the overlay's rate is at most 75% of the nats container's
// memory limit and the disk at most 75% of its volume; the streams' byte
// bounds add up to less than max_file_store, which is below the volume.
func TestCapacityFitsAtTheSizedRate(t *testing.T) {
	for _, ov := range overlays {
		t.Run(ov, func(t *testing.T) {
			r := mustRender(t, ov)
			cfg, declared := streamsConfig(t, r)
			rate := declared.EventsPerSecond
			if rate < minRate[ov] {
				t.Errorf("%s declares CAPACITY_EVENTS_PER_SECOND=%d, want at least %d", ov, rate, minRate[ov])
			}
			file, c, sts := natsConfig(t, r)
			mem := c.Resources.Limits[corev1.ResourceMemory]
			if declared.Limits.MaxMemory != mem.Value() {
				t.Errorf("%s: zen-capacity declares NATS_MEMORY_LIMIT=%d, the nats container's limit is %d", ov, declared.Limits.MaxMemory, mem.Value())
			}
			pvc := sts.Spec.VolumeClaimTemplates[0].Spec.Resources.Requests[corev1.ResourceStorage]
			f := streams.Estimate(cfg, float64(rate), streams.MeasuredCosts)
			t.Logf("%s at %d/s: memory %s of %s, disk %s of %s", ov, rate, streams.MiB(f.Memory), mem.String(), streams.MiB(f.Disk), pvc.String())
			for _, p := range f.Parts {
				t.Logf("  %s: %d entries, memory %s, disk %s", p.Name, p.Entries, streams.MiB(p.Memory), streams.MiB(p.Disk))
			}
			if w := streams.CapacityWarnings(f, streams.Limits{MaxMemory: mem.Value(), MaxStore: pvc.Value()}, 0.75); len(w) > 0 {
				t.Errorf("%s does not fit %d events/s:\n%s", ov, rate, strings.Join(w, "\n"))
			}
			setEnv(t, r, c, sts.Name)
			opts, err := server.ProcessConfigFile(file)
			if err != nil {
				t.Fatal(err)
			}
			bounds := cfg.RawMaxBytes + cfg.EventsMaxBytes + cfg.AttemptsMaxBytes + cfg.DLQMaxBytes + cfg.DedupeMaxBytes
			if cfg.RawMaxBytes <= 0 || cfg.EventsMaxBytes <= 0 || cfg.AttemptsMaxBytes <= 0 || cfg.DLQMaxBytes <= 0 || cfg.DedupeMaxBytes <= 0 {
				t.Errorf("a stream without a byte bound: %+v", cfg)
			}
			if bounds >= opts.JetStreamMaxStore {
				t.Errorf("the streams' max_bytes add up to %d, not below max_file_store %d", bounds, opts.JetStreamMaxStore)
			}
		})
	}
}

// streamsConfig reads the overlay's zen-streams ConfigMap as the services
// do, and what its zen-capacity ConfigMap declares to the Job's check.
func streamsConfig(t *testing.T, r *Rendered) (streams.Config, streams.Capacity) {
	t.Helper()
	env := func(name string) *envconf.Reader {
		for n, cm := range r.configMaps() {
			if n == name || strings.HasPrefix(n, name+"-") {
				return envconf.New(envconf.MapLookup(cm.Data))
			}
		}
		t.Fatalf("no ConfigMap %s", name)
		return nil
	}
	se, ce := env("zen-streams"), env("zen-capacity")
	cfg, c := streams.ConfigFromEnv(se), streams.CapacityFromEnv(ce)
	for _, e := range []*envconf.Reader{se, ce} {
		if err := e.Err(); err != nil {
			t.Fatal(err)
		}
	}
	return cfg, c
}

// setEnv sets the variables the NATS config references, as TestNATSConfig.
func setEnv(t *testing.T, r *Rendered, c corev1.Container, stsName string) {
	t.Helper()
	for name, v := range r.env(t, c) {
		val := v.Value
		switch v.Source {
		case "secret":
			val = fakeSecret(v.Secret)
		case "field":
			val = fmt.Sprintf("%s-0", stsName)
		}
		t.Setenv(name, val)
	}
}

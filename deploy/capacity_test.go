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

// The rate each overlay is sized for (docs/capacity.md).
var sizedFor = map[string]float64{"prod": 1000, "dev": 2}

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
			cfg := streamsConfig(t, r)
			file, c, sts := natsConfig(t, r)
			mem := c.Resources.Limits[corev1.ResourceMemory]
			pvc := sts.Spec.VolumeClaimTemplates[0].Spec.Resources.Requests[corev1.ResourceStorage]
			f := streams.Estimate(cfg, sizedFor[ov], streams.MeasuredCosts)
			t.Logf("%s at %.0f/s: memory %s of %s, disk %s of %s", ov, sizedFor[ov], streams.MiB(f.Memory), mem.String(), streams.MiB(f.Disk), pvc.String())
			for _, p := range f.Parts {
				t.Logf("  %s: %d entries, memory %s, disk %s", p.Name, p.Entries, streams.MiB(p.Memory), streams.MiB(p.Disk))
			}
			if w := streams.CapacityWarnings(f, streams.Limits{MaxMemory: mem.Value(), MaxStore: pvc.Value()}, 0.75); len(w) > 0 {
				t.Errorf("%s does not fit %.0f events/s:\n%s", ov, sizedFor[ov], strings.Join(w, "\n"))
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

// streamsConfig reads the overlay's zen-streams ConfigMap as the services do.
func streamsConfig(t *testing.T, r *Rendered) streams.Config {
	t.Helper()
	for name, cm := range r.configMaps() {
		if name == "zen-streams" || strings.HasPrefix(name, "zen-streams-") {
			env := envconf.New(envconf.MapLookup(cm.Data))
			cfg := streams.ConfigFromEnv(env)
			if err := env.Err(); err != nil {
				t.Fatalf("zen-streams: %v", err)
			}
			return cfg
		}
	}
	t.Fatal("no ConfigMap zen-streams")
	return streams.Config{}
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

package main

import (
	"fmt"
	"os"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/zen-twilio/zen/pkg/envconf"
	"github.com/zen-twilio/zen/pkg/streams"
)

// kustomization is the part of deploy/k8s/base/kustomization.yaml that
// holds the services' settings.
type kustomization struct {
	ConfigMapGenerator []struct {
		Name     string   `yaml:"name"`
		Literals []string `yaml:"literals"`
	} `yaml:"configMapGenerator"`
}

// loadShipped reads the zen-streams and zen-capacity ConfigMaps of the
// kustomization at path as the services read them.
func loadShipped(path string) (shipped, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return shipped{}, err
	}
	var k kustomization
	if err := yaml.Unmarshal(b, &k); err != nil {
		return shipped{}, fmt.Errorf("%s: %w", path, err)
	}
	env := map[string]string{}
	for _, g := range k.ConfigMapGenerator {
		if g.Name != "zen-streams" && g.Name != "zen-capacity" {
			continue
		}
		for _, l := range g.Literals {
			name, value, _ := strings.Cut(l, "=")
			env[name] = value
		}
	}
	r := envconf.New(envconf.MapLookup(env))
	p := shipped{path: path, cfg: streams.ConfigFromEnv(r), capacity: streams.CapacityFromEnv(r)}
	if err := r.Err(); err != nil {
		return shipped{}, fmt.Errorf("%s: %w", path, err)
	}
	if p.capacity.Limits.MaxMemory <= 0 {
		return shipped{}, fmt.Errorf("%s: NATS_MEMORY_LIMIT is not set in zen-capacity", path)
	}
	return p, nil
}

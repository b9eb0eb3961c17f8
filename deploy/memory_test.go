package deploy

import (
	"strconv"
	"testing"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/zen-twilio/zen/pkg/gctune"
)

// TestGoMemoryLimit: each stage hands its container's memory limit, in
// bytes, to pkg/gctune, which gives the Go runtime 90% of it as the soft
// memory limit; the value the stage would set is below the container's
// limit with headroom, and no literal GOMEMLIMIT overrides it.
func TestGoMemoryLimit(t *testing.T) {
	t.Parallel()
	for _, ov := range overlays {
		r := mustRender(t, ov)
		for _, s := range stages {
			_, c := r.stage(t, s)
			limit, ok := c.Resources.Limits["memory"]
			if !ok {
				t.Errorf("%s: %s has no memory limit", ov, s)
				continue
			}
			var ref *resourceRef
			for _, e := range c.Env {
				switch {
				case e.Name == "GOMEMLIMIT":
					t.Errorf("%s: %s sets GOMEMLIMIT, which would override the limit gctune derives", ov, s)
				case e.Name == gctune.MemoryLimitVar && e.ValueFrom != nil && e.ValueFrom.ResourceFieldRef != nil:
					f := e.ValueFrom.ResourceFieldRef
					ref = &resourceRef{container: f.ContainerName, resource: f.Resource, divisor: f.Divisor}
				}
			}
			if ref == nil {
				t.Errorf("%s: %s does not set %s from a resourceFieldRef", ov, s, gctune.MemoryLimitVar)
				continue
			}
			if ref.resource != "limits.memory" || (ref.container != "" && ref.container != s) {
				t.Errorf("%s: %s: %s reads %s of container %q, want limits.memory of %q", ov, s, gctune.MemoryLimitVar, ref.resource, ref.container, s)
			}
			// gctune reads bytes: the divisor must be 1.
			if ref.divisor.Cmp(resource.MustParse("1")) != 0 {
				t.Errorf("%s: %s: divisor %s, want \"1\" (gctune reads bytes)", ov, s, ref.divisor.String())
			}
			// The value the kubelet puts there, through gctune itself.
			bytes := limit.Value()
			got, err := gctune.MemoryLimit(func(k string) (string, bool) {
				if k == gctune.MemoryLimitVar {
					return strconv.FormatInt(bytes, 10), true
				}
				return "", false
			})
			if err != nil {
				t.Fatalf("%s: %s: %v", ov, s, err)
			}
			if got <= 0 || got >= bytes || got < bytes*8/10 {
				t.Errorf("%s: %s: Go memory limit %d for a container limit of %d, want 80–100%% of it", ov, s, got, bytes)
			}
		}
	}
}

type resourceRef struct {
	container, resource string
	divisor             resource.Quantity
}

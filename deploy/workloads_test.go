package deploy

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/zen-twilio/zen/pkg/envconf"
	"github.com/zen-twilio/zen/pkg/gctune"
	"github.com/zen-twilio/zen/pkg/pack"
	"github.com/zen-twilio/zen/pkg/streams"
	"github.com/zen-twilio/zen/services/forwarder"
	"github.com/zen-twilio/zen/services/ingester"
	"github.com/zen-twilio/zen/services/transformer"
)

// stages are the three service Deployments (each named as its container).
var stages = []string{"ingester", "transformer", "forwarder"}

// packageDir is the copy of the transform package the ConfigMap zen-package
// is generated from.
const packageDir = "k8s/base/package"

// packageVars are the package's {{NAME}} variables, which the transformer and
// the forwarder read through their lookup besides ConfigVars.
func packageVars(tb testing.TB) []string {
	tb.Helper()
	p, err := pack.LoadWith(packageDir, envconf.MapLookup(nil), pack.Options{AllowMissingEnv: true})
	if err != nil {
		tb.Fatalf("load %s: %v", packageDir, err)
	}
	return p.MissingEnv
}

// routes are the package's targets and the event types routed to each.
func routes(tb testing.TB) []streams.Route {
	tb.Helper()
	p, err := pack.LoadWith(packageDir, envconf.MapLookup(nil), pack.Options{AllowMissingEnv: true})
	if err != nil {
		tb.Fatalf("load %s: %v", packageDir, err)
	}
	return p.Routes()
}

// zenStreamsApplyVars are the variables `zen streams apply` reads: the
// stream and consumer settings and the capacity check's (asked of
// pkg/streams itself, the source of truth) plus the six cmd/zen/streams.go reads directly. cmd/zen is a
// main package and cannot be imported, so those six are listed here:
// NATS_URL, PACKAGE_DIR, NATS_CREDS, NATS_USER, NATS_PASSWORD, NATS_INBOX_PREFIX.
func zenStreamsApplyVars() []string {
	r := envconf.New(envconf.MapLookup(nil))
	streams.ConfigFromEnv(r)
	streams.CapacityFromEnv(r)
	streams.ConsumerSettingsFromEnv(r, "TRANSFORMER_", streams.DefaultTransformerSettings())
	streams.ConsumerSettingsFromEnv(r, "FORWARDER_", streams.DefaultForwarderSettings())
	return append(r.Names(), "NATS_URL", "PACKAGE_DIR", "NATS_CREDS", "NATS_USER", "NATS_PASSWORD", "NATS_INBOX_PREFIX")
}

// readVars returns, per workload container, the variables its program reads.
func readVars(tb testing.TB) map[string][]string {
	pv := packageVars(tb)
	return map[string][]string{
		"ingester":          append(ingester.ConfigVars(), gctune.Vars()...),
		"transformer":       append(append(transformer.ConfigVars(), pv...), gctune.Vars()...),
		"forwarder":         append(append(forwarder.ConfigVars(), pv...), gctune.Vars()...),
		"zen-streams-apply": zenStreamsApplyVars(),
	}
}

// TestEnvNamesAreRead: every variable a Deployment (or the Job) sets is one
// its program reads, so a renamed or misspelt variable fails here rather
// than being silently ignored in the cluster.
func TestEnvNamesAreRead(t *testing.T) {
	t.Parallel()
	reads := readVars(t)
	for _, ov := range overlays {
		r := mustRender(t, ov)
		for _, w := range r.workloads() {
			if w.Kind == "StatefulSet" {
				continue // nats-server: its variables are checked by TestNATSConfig
			}
			known, ok := reads[w.Name]
			if !ok {
				t.Errorf("%s: %s %s: no list of the variables it reads", ov, w.Kind, w.Name)
				continue
			}
			c := w.Pod.Containers[0]
			for _, name := range sortedKeys(r.env(t, c)) {
				if !contains(known, name) {
					t.Errorf("%s: %s %s sets %s, which it does not read (it reads %s)", ov, w.Kind, w.Name, name, strings.Join(known, " "))
				}
			}
		}
	}
}

// TestEnvRequired: what each stage must be told in a cluster.
func TestEnvRequired(t *testing.T) {
	t.Parallel()
	common := []string{"NATS_URL", "NATS_USER", "NATS_PASSWORD", "STREAMS_APPLY", "PACKAGE_DIR", "LISTEN_ADDR", "SHUTDOWN_GRACE", "LOG_LEVEL", "STREAM_REPLICAS"}
	want := map[string][]string{
		"ingester":    append([]string{"PUBLIC_URL", "TWILIO_AUTH_TOKEN"}, common...),
		"transformer": common, // it loads the package's rules only (no target secrets)
		"forwarder":   append(packageVars(t), common...),
	}
	for _, ov := range overlays {
		r := mustRender(t, ov)
		for _, s := range stages {
			_, c := r.stage(t, s)
			env := r.env(t, c)
			for _, name := range want[s] {
				if _, ok := env[name]; !ok {
					t.Errorf("%s: %s does not set %s", ov, s, name)
				}
			}
			if _, ok := env["COMMS_WAREHOUSE_TOKEN"]; ok && s != "forwarder" {
				t.Errorf("%s: %s gets the warehouse token; only the forwarder talks to the warehouse", ov, s)
			}
			if got := env["STREAMS_APPLY"].Value; got != "false" {
				t.Errorf("%s: %s STREAMS_APPLY = %q, want false (the Job applies the streams)", ov, s, got)
			}
			if got := env["NATS_USER"].Value; got != s {
				t.Errorf("%s: %s NATS_USER = %q, want its own user %q", ov, s, got, s)
			}
			if p := env["NATS_PASSWORD"].Secret; p == nil || p.Key != env["NATS_USER"].Value {
				t.Errorf("%s: %s NATS_PASSWORD must be the zen-nats-users key of its own user, got %+v", ov, s, p)
			}
		}
	}
}

// fakeSecret is what a test puts where the cluster would put a secret.
func fakeSecret(ref *corev1.SecretKeySelector) string {
	// Long enough for every secret's minimum (TRANSFORMER_REDACT_KEY: 32 bytes).
	return "fake-" + ref.Name + "-" + ref.Key + "-not-a-secret-0000000000"
}

// lookupFor is a container's environment as an envconf.Lookup, secrets
// replaced by fakes and overrides applied last.
func lookupFor(env map[string]EnvVar, overrides map[string]string) envconf.Lookup {
	m := map[string]string{}
	for k, v := range env {
		switch v.Source {
		case "secret":
			m[k] = fakeSecret(v.Secret)
		case "field":
			m[k] = "field-" + k
		default:
			m[k] = v.Value
		}
	}
	for k, v := range overrides {
		m[k] = v
	}
	return envconf.MapLookup(m)
}

// TestEnvIsValidConfig: each stage's environment, as rendered, is a
// configuration its own ConfigFromEnv accepts (every value parses and
// validates); and the consumer settings the workers converge are the ones
// the Job declares.
func TestEnvIsValidConfig(t *testing.T) {
	t.Parallel()
	for _, ov := range overlays {
		r := mustRender(t, ov)
		job := one[*jobT](t, r, "zen-streams-apply")
		jobEnv := lookupFor(r.env(t, job.Spec.Template.Spec.Containers[0]), nil)
		jr := envconf.New(jobEnv)
		jobStreams := streams.ConfigFromEnv(jr)
		jobT := streams.ConsumerSettingsFromEnv(jr, "TRANSFORMER_", streams.DefaultTransformerSettings())
		jobF := streams.ConsumerSettingsFromEnv(jr, "FORWARDER_", streams.DefaultForwarderSettings())
		if err := jr.Err(); err != nil {
			t.Errorf("%s: zen-streams-apply environment: %v", ov, err)
		}

		_, c := r.stage(t, "ingester")
		ic, err := ingester.ConfigFromEnv(lookupFor(r.env(t, c), nil))
		if err != nil {
			t.Errorf("%s: ingester.ConfigFromEnv: %v", ov, err)
		}
		if ic.Streams != jobStreams {
			t.Errorf("%s: ingester stream settings %+v differ from the Job's %+v", ov, ic.Streams, jobStreams)
		}

		_, c = r.stage(t, "transformer")
		tc, err := transformer.ConfigFromEnv(lookupFor(r.env(t, c), nil))
		if err != nil {
			t.Errorf("%s: transformer.ConfigFromEnv: %v", ov, err)
		}
		if fmt.Sprint(tc.Consumer) != fmt.Sprint(jobT) {
			t.Errorf("%s: transformer consumer settings %+v differ from the Job's %+v: they would rewrite each other's consumer", ov, tc.Consumer, jobT)
		}
		if tc.Streams != jobStreams {
			t.Errorf("%s: transformer stream settings differ from the Job's", ov)
		}

		_, c = r.stage(t, "forwarder")
		fc, err := forwarder.ConfigFromEnv(lookupFor(r.env(t, c), nil))
		if err != nil {
			t.Errorf("%s: forwarder.ConfigFromEnv: %v", ov, err)
		}
		if fmt.Sprint(fc.Consumer) != fmt.Sprint(jobF) {
			t.Errorf("%s: forwarder consumer settings %+v differ from the Job's %+v", ov, fc.Consumer, jobF)
		}
		if fc.Streams != jobStreams {
			t.Errorf("%s: forwarder stream settings differ from the Job's", ov)
		}
	}
}

// TestReplicas: prod is a three-node JetStream cluster with R3 streams and
// two or more replicas of every stage; dev runs one of everything, R1.
func TestReplicas(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		overlay                   string
		nats, streamReplicas      int
		minStage, maxStageDefault int
	}{
		{overlay: "prod", nats: 3, streamReplicas: 3, minStage: 2},
		{overlay: "dev", nats: 1, streamReplicas: 1, minStage: 1, maxStageDefault: 1},
	} {
		r := mustRender(t, tc.overlay)
		sts := one[*statefulSetT](t, r, "nats")
		if got := deref(sts.Spec.Replicas); got != int32(tc.nats) {
			t.Errorf("%s: nats replicas = %d, want %d", tc.overlay, got, tc.nats)
		}
		for _, w := range r.workloads() {
			if w.Kind == "StatefulSet" {
				continue
			}
			env := r.env(t, w.Pod.Containers[0])
			if got := env["STREAM_REPLICAS"].Value; got != strconv.Itoa(tc.streamReplicas) {
				t.Errorf("%s: %s STREAM_REPLICAS = %q, want %d", tc.overlay, w.Name, got, tc.streamReplicas)
			}
		}
		for _, s := range stages {
			d, _ := r.stage(t, s)
			got := deref(d.Spec.Replicas)
			if got < int32(tc.minStage) || (tc.maxStageDefault > 0 && got > int32(tc.maxStageDefault)) {
				t.Errorf("%s: %s replicas = %d, want >= %d (and <= %d when set)", tc.overlay, s, got, tc.minStage, tc.maxStageDefault)
			}
		}
		if tc.overlay == "prod" {
			hpa := one[*hpaT](t, r, "ingester")
			if got := deref(hpa.Spec.MinReplicas); got < 2 {
				t.Errorf("prod: ingester HPA minReplicas = %d, want >= 2", got)
			}
			for _, s := range []string{"transformer", "forwarder"} {
				so := one[*ScaledObject](t, r, s)
				if got := deref(so.Spec.MinReplicaCount); got < 2 {
					t.Errorf("prod: %s ScaledObject minReplicaCount = %d, want >= 2", s, got)
				}
			}
		}
	}
}

func deref(p *int32) int32 {
	if p == nil {
		return 1 // the API default of replicas and minReplicas
	}
	return *p
}

// TestHardened: every container runs as non-root with a read-only root
// filesystem, no privilege escalation and no capabilities; every pod has a
// RuntimeDefault seccomp profile and no service-account token; every
// container has CPU and memory requests and limits.
func TestHardened(t *testing.T) {
	t.Parallel()
	for _, ov := range []string{"base", "dev", "prod", "tools"} {
		r := mustRender(t, ov)
		for _, w := range r.workloads() {
			where := ov + ": " + w.Kind + " " + w.Name
			p := w.Pod
			if p.AutomountServiceAccountToken == nil || *p.AutomountServiceAccountToken {
				t.Errorf("%s: automountServiceAccountToken must be false", where)
			}
			if p.SecurityContext == nil || p.SecurityContext.SeccompProfile == nil || p.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Errorf("%s: pod seccompProfile must be RuntimeDefault", where)
			}
			if p.HostNetwork || p.HostPID || p.HostIPC {
				t.Errorf("%s: uses a host namespace", where)
			}
			for _, c := range append(append([]corev1.Container{}, p.InitContainers...), p.Containers...) {
				where := where + " container " + c.Name
				sc := c.SecurityContext
				if sc == nil {
					t.Errorf("%s: no securityContext", where)
					continue
				}
				nonRoot := sc.RunAsNonRoot
				if nonRoot == nil && p.SecurityContext != nil {
					nonRoot = p.SecurityContext.RunAsNonRoot
				}
				if nonRoot == nil || !*nonRoot {
					t.Errorf("%s: runAsNonRoot must be true", where)
				}
				uid := sc.RunAsUser
				if uid == nil && p.SecurityContext != nil {
					uid = p.SecurityContext.RunAsUser
				}
				// The images name their user (distroless "nonroot"); the kubelet
				// can only enforce runAsNonRoot with a numeric uid.
				if uid == nil || *uid == 0 {
					t.Errorf("%s: runAsUser must be a non-zero uid", where)
				}
				if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
					t.Errorf("%s: readOnlyRootFilesystem must be true", where)
				}
				if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
					t.Errorf("%s: allowPrivilegeEscalation must be false", where)
				}
				if sc.Privileged != nil && *sc.Privileged {
					t.Errorf("%s: privileged", where)
				}
				if sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" || len(sc.Capabilities.Add) > 0 {
					t.Errorf("%s: capabilities must drop ALL and add none, got %s", where, toYAML(sc.Capabilities))
				}
				for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
					req, okReq := c.Resources.Requests[res]
					lim, okLim := c.Resources.Limits[res]
					if !okReq || !okLim || req.IsZero() || lim.IsZero() {
						t.Errorf("%s: %s request and limit must be set", where, res)
					} else if req.Cmp(lim) > 0 {
						t.Errorf("%s: %s request %s above limit %s", where, res, req.String(), lim.String())
					}
				}
				if c.Image == "" || strings.HasSuffix(c.Image, ":latest") {
					t.Errorf("%s: image %q must be set and not :latest", where, c.Image)
				}
			}
		}
	}
}

// TestProbes: every stage's readiness probe is GET /readyz and its liveness
// probe GET /healthz, on the port its LISTEN_ADDR serves (TestServices
// proves those paths answer on the running services).
func TestProbes(t *testing.T) {
	t.Parallel()
	for _, ov := range overlays {
		r := mustRender(t, ov)
		for _, s := range stages {
			_, c := r.stage(t, s)
			port := listenPort(t, r.env(t, c)["LISTEN_ADDR"].Value)
			for _, p := range []struct {
				kind  string
				probe *corev1.Probe
				path  string
			}{{"readiness", c.ReadinessProbe, "/readyz"}, {"liveness", c.LivenessProbe, "/healthz"}} {
				if p.probe == nil || p.probe.HTTPGet == nil {
					t.Errorf("%s: %s has no HTTP %s probe", ov, s, p.kind)
					continue
				}
				if p.probe.HTTPGet.Path != p.path {
					t.Errorf("%s: %s %s probe path = %q, want %q", ov, s, p.kind, p.probe.HTTPGet.Path, p.path)
				}
				if got := strconv.Itoa(int(portOf(t, c, p.probe.HTTPGet.Port))); got != port {
					t.Errorf("%s: %s %s probe port = %s, but LISTEN_ADDR serves %s", ov, s, p.kind, got, port)
				}
			}
		}
	}
}

// drainOverhead is the shutdown work each stage does beyond SHUTDOWN_GRACE,
// read from the services' Run methods: the ingester drains its NATS
// connection for up to 10 s after the HTTP shutdown (SHUTDOWN_GRACE); the
// workers stop their ops server (5 s) and finish in-flight messages (bounded
// by PUBLISH_TIMEOUT or FORWARDER_HTTP_TIMEOUT) before the NATS drain
// (SHUTDOWN_GRACE).
var drainOverhead = map[string]time.Duration{
	"ingester":    10 * time.Second,
	"transformer": 10 * time.Second,
	"forwarder":   15 * time.Second,
}

// TestTerminationGrace: Kubernetes must not kill a stage before it drained:
// terminationGracePeriodSeconds > preStop sleep + SHUTDOWN_GRACE + the rest
// of its shutdown.
func TestTerminationGrace(t *testing.T) {
	t.Parallel()
	for _, ov := range overlays {
		r := mustRender(t, ov)
		for _, s := range stages {
			d, c := r.stage(t, s)
			grace, err := time.ParseDuration(r.env(t, c)["SHUTDOWN_GRACE"].Value)
			if err != nil {
				t.Errorf("%s: %s SHUTDOWN_GRACE: %v", ov, s, err)
				continue
			}
			var preStop time.Duration
			if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Sleep != nil {
				preStop = time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
			}
			need := preStop + grace + drainOverhead[s]
			tgps := d.Spec.Template.Spec.TerminationGracePeriodSeconds
			if tgps == nil || time.Duration(*tgps)*time.Second <= need {
				t.Errorf("%s: %s terminationGracePeriodSeconds = %s, want > %s (preStop %s + SHUTDOWN_GRACE %s + %s)",
					ov, s, toYAML(tgps), need, preStop, grace, drainOverhead[s])
			}
		}
	}
}

// secretRefs are the Secrets the manifests reference, with their keys; all
// are created by the operator (deploy/k8s/README.md), none is rendered.
var secretRefs = map[string][]string{
	"zen-nats-users": {"admin", "provisioner", "ingester", "transformer", "forwarder", "system"},
	"zen-twilio":     {"auth-token"},
	"zen-warehouse":  {"token"},
	"zen-redact":     {"key"}, // optional: only a package whose rules hash needs it
}

var secretName = regexp.MustCompile(`(?i)(TOKEN|PASSWORD|SECRET|CREDS|PRIVATE|_KEY$)`)

// TestSecretsByReference: no Secret is rendered, no secret-looking variable
// has a literal or ConfigMap value, no ConfigMap holds a secret-looking key,
// and every secret reference names a documented Secret and key.
func TestSecretsByReference(t *testing.T) {
	t.Parallel()
	used := map[string]bool{}
	for _, ov := range []string{"base", "dev", "prod", "tools"} {
		r := mustRender(t, ov)
		for _, o := range r.Objects {
			if o.Kind == "Secret" {
				t.Errorf("%s: renders Secret %s: secrets are created out of band, never committed", ov, o.Name)
			}
		}
		for name, cm := range r.configMaps() {
			for k := range cm.Data {
				if secretName.MatchString(k) {
					t.Errorf("%s: ConfigMap %s holds %s: put it in a Secret", ov, name, k)
				}
			}
		}
		for _, w := range r.workloads() {
			for _, c := range w.Pod.Containers {
				for _, v := range r.env(t, c) {
					if v.Source == "secret" {
						keys, ok := secretRefs[v.Secret.Name]
						if !ok || !contains(keys, v.Secret.Key) {
							t.Errorf("%s: %s %s: %s references undocumented secret %s key %s", ov, w.Kind, w.Name, v.Name, v.Secret.Name, v.Secret.Key)
						}
						used[v.Secret.Name+"/"+v.Secret.Key] = true
						continue
					}
					if secretName.MatchString(v.Name) {
						t.Errorf("%s: %s %s: %s is set from a %s, not a Secret", ov, w.Kind, w.Name, v.Name, v.Source)
					}
				}
			}
		}
	}
	var unused []string
	for name, keys := range secretRefs {
		for _, k := range keys {
			if !used[name+"/"+k] {
				unused = append(unused, name+"/"+k)
			}
		}
	}
	sort.Strings(unused)
	if len(unused) > 0 {
		t.Errorf("documented secret keys no workload uses: %v", unused)
	}
}

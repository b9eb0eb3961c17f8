package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	release "helm.sh/helm/v4/pkg/release/v1"
	releaseutil "helm.sh/helm/v4/pkg/release/v1/util"
	"helm.sh/helm/v4/pkg/strvals"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/zen-twilio/zen/pkg/envconf"
	"github.com/zen-twilio/zen/pkg/streams"
	"github.com/zen-twilio/zen/services/forwarder"
	"github.com/zen-twilio/zen/services/ingester"
	"github.com/zen-twilio/zen/services/transformer"
)

// chartDir is the Helm chart of the three stages.
const chartDir = "helm/zen-twilio"

// The oldest Kubernetes the chart supports (Chart.yaml kubeVersion: the
// ingester's preStop sleep).
const helmKubeVersion = "v1.30.0"

// helmRelease is the release name the tests install under.
const helmRelease = "zen"

var (
	helmMu    sync.Mutex
	helmCache = map[string]*Rendered{}
)

// mustHelm renders the chart into namespace with the given --set values
// (once per test binary and arguments) and decodes every object strictly,
// like mustRender does for kustomize.
func mustHelm(tb testing.TB, namespace string, sets ...string) *Rendered {
	tb.Helper()
	key := namespace + "|" + strings.Join(sets, "|")
	helmMu.Lock()
	defer helmMu.Unlock()
	if r, ok := helmCache[key]; ok {
		return r
	}
	r, err := helmRender(namespace, helmKubeVersion, sets...)
	if err != nil {
		tb.Fatalf("helm render %s: %v", key, err)
	}
	helmCache[key] = r
	return r
}

// helmRender is `helm template` through the Helm Go SDK: the install action
// as a client-only dry run (no cluster), which validates the values, the
// dependencies' conditions and kubeVersion as `helm install` does. Each set
// is a --set argument. Hooks are decoded too (the chart has none today).
func helmRender(namespace, kubeVersion string, sets ...string) (*Rendered, error) {
	ch, err := loader.Load(chartDir)
	if err != nil {
		return nil, err
	}
	vals := map[string]any{}
	for _, s := range sets {
		if err := strvals.ParseInto(s, vals); err != nil {
			return nil, fmt.Errorf("--set %s: %w", s, err)
		}
	}
	kv, err := common.ParseKubeVersion(kubeVersion)
	if err != nil {
		return nil, err
	}
	install := action.NewInstall(action.NewConfiguration(action.ConfigurationSetLogger(slog.DiscardHandler)))
	install.DryRunStrategy = action.DryRunClient
	install.ReleaseName = helmRelease
	install.Namespace = namespace
	install.Replace = true
	install.KubeVersion = kv
	rel, err := install.RunWithContext(context.Background(), ch, vals)
	if err != nil {
		return nil, err
	}
	r, ok := rel.(*release.Release)
	if !ok {
		return nil, fmt.Errorf("install returned a %T", rel)
	}
	docs := releaseutil.SplitManifests(r.Manifest)
	for _, h := range r.Hooks {
		docs[h.Path+"#"+h.Name] = h.Manifest
	}
	out := &Rendered{Name: "helm " + namespace + " " + strings.Join(sets, " ")}
	for _, k := range sortedKeys(docs) {
		if strings.TrimSpace(docs[k]) == "" {
			continue
		}
		o, err := decodeObject([]byte(docs[k]))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		out.Objects = append(out.Objects, o)
	}
	return out, nil
}

// helmJob is the chart's streams Job (named zen-streams-apply-<revision>).
func helmJob(tb testing.TB, r *Rendered) *jobT {
	tb.Helper()
	return one[*jobT](tb, r, "zen-streams-apply-1")
}

// TestHelmRenderStrict: the chart renders with its defaults into any
// namespace, every object decodes strictly into its type and carries the
// release's namespace, and nothing secret is rendered.
func TestHelmRenderStrict(t *testing.T) {
	t.Parallel()
	r := mustHelm(t, "payments")
	want := []string{"Deployment/ingester", "Deployment/transformer", "Deployment/forwarder", "Job/zen-streams-apply-1",
		"HorizontalPodAutoscaler/ingester", "ScaledObject/transformer", "ScaledObject/forwarder",
		"Service/ingester", "Ingress/ingester", "ConfigMap/zen-package", "ConfigMap/zen-capacity",
		"PodDisruptionBudget/ingester", "PodDisruptionBudget/transformer", "PodDisruptionBudget/forwarder",
		"ServiceAccount/zen-ingester", "ServiceAccount/zen-provisioner", "NetworkPolicy/default-deny"}
	have := map[string]bool{}
	for _, o := range r.Objects {
		have[o.Kind+"/"+o.Name] = true
		if o.Namespace != "payments" {
			t.Errorf("%s/%s: namespace %q, want the release's (payments)", o.Kind, o.Name, o.Namespace)
		}
		if o.Kind == "Secret" {
			t.Errorf("renders Secret %s: secrets are referenced, never rendered", o.Name)
		}
	}
	for _, w := range want {
		if !have[w] {
			t.Errorf("%s is not rendered", w)
		}
	}
	for name, cm := range r.configMaps() {
		for k := range cm.Data {
			if secretName.MatchString(k) {
				t.Errorf("ConfigMap %s holds %s: put it in a Secret", name, k)
			}
		}
	}
	for _, w := range r.workloads() {
		for _, c := range w.Pod.Containers {
			for _, v := range r.env(t, c) {
				switch {
				case v.Source == "secret":
					if keys, ok := secretRefs[v.Secret.Name]; !ok || !contains(keys, v.Secret.Key) {
						t.Errorf("%s %s: %s references undocumented secret %s key %s", w.Kind, w.Name, v.Name, v.Secret.Name, v.Secret.Key)
					}
				case secretName.MatchString(v.Name):
					t.Errorf("%s %s: %s is set from a %s, not a Secret", w.Kind, w.Name, v.Name, v.Source)
				}
			}
		}
	}
}

// TestHelmEnv: every variable the chart sets on a stage or the Job is one
// its program reads (the services' ConfigVars, as TestEnvNamesAreRead checks
// the kustomize output), forms a configuration its ConfigFromEnv accepts,
// and the workers' consumer settings are the Job's.
func TestHelmEnv(t *testing.T) {
	t.Parallel()
	r := mustHelm(t, "zen")
	checkEnvIsRead(t, r)
	checkEnvIsValid(t, r)
}

// checkEnvIsRead fails for a variable a workload sets that its program does
// not read (keyed by the pod's app.kubernetes.io/name).
func checkEnvIsRead(t *testing.T, r *Rendered) {
	t.Helper()
	reads := readVars(t)
	for _, w := range r.workloads() {
		name := w.Labels["app.kubernetes.io/name"]
		known, ok := reads[name]
		if !ok {
			t.Errorf("%s: %s %s: no list of the variables it reads", r.Name, w.Kind, w.Name)
			continue
		}
		for _, v := range sortedKeys(r.env(t, w.Pod.Containers[0])) {
			if !contains(known, v) {
				t.Errorf("%s: %s %s sets %s, which it does not read (it reads %s)", r.Name, w.Kind, w.Name, v, strings.Join(known, " "))
			}
		}
	}
}

// checkEnvIsValid runs each stage's ConfigFromEnv on its rendered
// environment (secrets as fakes) and compares the settings with the Job's.
func checkEnvIsValid(t *testing.T, r *Rendered) {
	t.Helper()
	jr := envconf.New(lookupFor(r.env(t, helmJob(t, r).Spec.Template.Spec.Containers[0]), nil))
	jobStreams := streams.ConfigFromEnv(jr)
	jobT := streams.ConsumerSettingsFromEnv(jr, "TRANSFORMER_", streams.DefaultTransformerSettings())
	jobF := streams.ConsumerSettingsFromEnv(jr, "FORWARDER_", streams.DefaultForwarderSettings())
	if err := jr.Err(); err != nil {
		t.Errorf("%s: streams Job environment: %v", r.Name, err)
	}
	lookup := func(stage string) envconf.Lookup {
		_, c := r.stage(t, stage)
		return lookupFor(r.env(t, c), nil)
	}
	ic, err := ingester.ConfigFromEnv(lookup("ingester"))
	if err != nil {
		t.Errorf("%s: ingester.ConfigFromEnv: %v", r.Name, err)
	}
	tc, err := transformer.ConfigFromEnv(lookup("transformer"))
	if err != nil {
		t.Errorf("%s: transformer.ConfigFromEnv: %v", r.Name, err)
	}
	fc, err := forwarder.ConfigFromEnv(lookup("forwarder"))
	if err != nil {
		t.Errorf("%s: forwarder.ConfigFromEnv: %v", r.Name, err)
	}
	if ic.Streams != jobStreams || tc.Streams != jobStreams || fc.Streams != jobStreams {
		t.Errorf("%s: the stages' stream settings differ from the Job's", r.Name)
	}
	if fmt.Sprint(tc.Consumer) != fmt.Sprint(jobT) || fmt.Sprint(fc.Consumer) != fmt.Sprint(jobF) {
		t.Errorf("%s: the workers' consumer settings differ from the Job's", r.Name)
	}
}

// notInChart are the kustomize prod objects the chart does not render, and
// why; every other object must have its counterpart in the chart.
var notInChart = map[string]string{
	"StatefulSet/nats":         "NATS: the nats dependency or an existing NATS",
	"Service/nats":             "NATS",
	"Service/nats-headless":    "NATS",
	"ConfigMap/nats-config":    "NATS",
	"ServiceAccount/nats":      "NATS",
	"PodDisruptionBudget/nats": "NATS",
	// With nats.enabled the chart renders it for the dependency's pods
	// (TestHelmNATSDependency).
	"NetworkPolicy/nats":              "NATS",
	"PrometheusRule/zen-twilio":       "monitoring: deploy/k8s/components/monitoring",
	"ConfigMap/zen-grafana-dashboard": "monitoring",
	"PodMonitor/zen-ingester":         "monitoring",
	"PodMonitor/zen-transformer":      "monitoring",
	"PodMonitor/zen-forwarder":        "monitoring",
	"PodMonitor/zen-nats":             "monitoring",
}

// TestHelmMatchesKustomize: with its defaults the chart renders the same
// objects as the kustomize prod overlay (less NATS and monitoring,
// notInChart): the same images, ports, probes, resources, security
// contexts, environment, volumes, autoscalers, PDBs, NetworkPolicies,
// Service and Ingress, field by field (compareObjects says which).
func TestHelmMatchesKustomize(t *testing.T) {
	t.Parallel()
	compareObjects(t, mustRender(t, "prod"), mustHelm(t, "zen"))
}

// compareObjects pairs each kustomize object with the chart's of the same
// kind and name and fails on the first field that differs, after removing
// what the two tools legitimately do differently:
//   - kustomize's hashed ConfigMap names (zen-common-84gm8c7b48) are the
//     chart's plain ones, whose changes roll the pods through the
//     checksum/config annotation instead;
//   - the chart adds Helm's labels (instance, managed-by, version, chart and
//     a component on every object): the kustomize labels must all be there;
//   - env is compared as a set (the chart lists it by name);
//   - the namespace is the release's (TestHelmRenderStrict);
//   - the Job is named zen-streams-apply-<revision> (a new Job per upgrade);
//   - a Deployment with an autoscaler has no replicas in the chart (the
//     autoscaler owns them, and an upgrade must not reset them): its
//     autoscaler's minimum must be at least kustomize's replicas.
func compareObjects(t *testing.T, kust, chart *Rendered) {
	t.Helper()
	hashed := regexp.MustCompile(`^(.+)-[a-z0-9]{10}$`)
	plain := map[string]string{}
	for name := range kust.configMaps() {
		if m := hashed.FindStringSubmatch(name); m != nil {
			plain[name] = m[1]
		}
	}
	chartByKey := map[string]Object{}
	for _, o := range chart.Objects {
		name := o.Name
		if o.Kind == "Job" {
			name = strings.TrimSuffix(name, "-1")
		}
		chartByKey[o.Kind+"/"+name] = o
	}
	seen := map[string]bool{}
	for _, ko := range kust.Objects {
		name := ko.Name
		if p, ok := plain[name]; ok && ko.Kind == "ConfigMap" {
			name = p
		}
		key := ko.Kind + "/" + name
		if _, skip := notInChart[key]; skip {
			continue
		}
		seen[key] = true
		co, ok := chartByKey[key]
		if !ok {
			t.Errorf("%s: rendered by kustomize, not by the chart (add it, or to notInChart with the reason)", key)
			continue
		}
		k, c := normalized(t, ko, plain), normalized(t, co, nil)
		if ko.Kind == "Deployment" && autoscaled(chart, ko.Name) {
			spec := k["spec"].(map[string]any)
			if want, min := int32(spec["replicas"].(float64)), autoscalerMin(t, chart, ko.Name); min < want {
				t.Errorf("%s: the chart's autoscaler minimum %d is below kustomize's %d replicas", key, min, want)
			}
			delete(spec, "replicas")
		}
		if path, ok := covered(k, c, ""); !ok {
			t.Errorf("%s: the chart differs from kustomize at %s", key, path)
		}
		dropHelmOnly(c)
		if path, ok := covered(c, k, ""); !ok {
			t.Errorf("%s: the chart sets %s, which kustomize does not", key, path)
		}
	}
	for key := range chartByKey {
		if !seen[key] {
			t.Errorf("%s: rendered by the chart, not by kustomize prod", key)
		}
	}
}

// normalized is o as generic JSON without its name and namespace, with the
// hashed ConfigMap names made plain and each env list sorted by name.
func normalized(t *testing.T, o Object, plain map[string]string) map[string]any {
	t.Helper()
	b, err := json.Marshal(o.Typed)
	if err != nil {
		t.Fatal(err)
	}
	for hashed, name := range plain {
		b = []byte(strings.ReplaceAll(string(b), `"`+hashed+`"`, `"`+name+`"`))
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	meta := m["metadata"].(map[string]any)
	delete(meta, "name")
	delete(meta, "namespace")
	walk(m, func(key string, v any) {
		if env, ok := v.([]any); ok && key == "env" {
			sort.Slice(env, func(i, j int) bool {
				return fmt.Sprint(env[i].(map[string]any)["name"]) < fmt.Sprint(env[j].(map[string]any)["name"])
			})
		}
	})
	return m
}

// chartLabels are the labels the chart puts on every object; the kustomize
// ones must be among them with the same values (the first comparison).
var chartLabels = []string{"app.kubernetes.io/name", "app.kubernetes.io/component", "app.kubernetes.io/instance",
	"app.kubernetes.io/managed-by", "app.kubernetes.io/version", "helm.sh/chart"}

// dropHelmOnly removes from a chart object what only Helm adds: its labels
// and the checksum/config pod annotation.
func dropHelmOnly(m map[string]any) {
	walk(m, func(key string, v any) {
		meta, ok := v.(map[string]any)
		if !ok || key != "metadata" {
			return
		}
		if labels, ok := meta["labels"].(map[string]any); ok {
			for _, l := range chartLabels {
				delete(labels, l)
			}
		}
		if ann, ok := meta["annotations"].(map[string]any); ok {
			delete(ann, "checksum/config")
			if len(ann) == 0 {
				delete(meta, "annotations")
			}
		}
	})
}

// walk calls fn for every key and value below v, parents first.
func walk(v any, fn func(key string, v any)) {
	switch x := v.(type) {
	case map[string]any:
		for k, c := range x {
			fn(k, c)
			walk(c, fn)
		}
	case []any:
		for _, c := range x {
			walk(c, fn)
		}
	}
}

// autoscaled reports whether the chart renders an HPA or a ScaledObject for
// the Deployment name.
func autoscaled(r *Rendered, name string) bool {
	for _, h := range all[*autoscalingv2.HorizontalPodAutoscaler](r) {
		if h.Spec.ScaleTargetRef.Name == name {
			return true
		}
	}
	for _, so := range all[*ScaledObject](r) {
		if so.Spec.ScaleTargetRef.Name == name {
			return true
		}
	}
	return false
}

// autoscalerMin is the minimum replicas of the Deployment's autoscaler.
func autoscalerMin(t *testing.T, r *Rendered, name string) int32 {
	t.Helper()
	for _, h := range all[*autoscalingv2.HorizontalPodAutoscaler](r) {
		if h.Spec.ScaleTargetRef.Name == name {
			return deref(h.Spec.MinReplicas)
		}
	}
	return deref(one[*ScaledObject](t, r, name).Spec.MinReplicaCount)
}

// TestHelmValuesOverrides: the values an operator changes take effect, and
// the result is still a configuration the services accept.
func TestHelmValuesOverrides(t *testing.T) {
	t.Parallel()
	t.Run("existing NATS", func(t *testing.T) {
		t.Parallel()
		const url = "nats://nats.shared-nats.svc.cluster.local:4222"
		const monitor = "nats-headless.shared-nats.svc.cluster.local:8222"
		r := mustHelm(t, "zen", "nats.url="+url, "nats.monitoringEndpoint="+monitor,
			`networkPolicy.natsPeers[0].namespaceSelector.matchLabels.kubernetes\.io/metadata\.name=shared-nats`,
			"nats.credentials.ingester.existingSecret=ingester-nats")
		for _, w := range r.workloads() {
			if got := r.env(t, w.Pod.Containers[0])["NATS_URL"].Value; got != url {
				t.Errorf("%s %s: NATS_URL = %q, want %q", w.Kind, w.Name, got, url)
			}
		}
		for _, so := range all[*ScaledObject](r) {
			for _, tr := range so.Spec.Triggers {
				if got := tr.Metadata["natsServerMonitoringEndpoint"]; got != monitor {
					t.Errorf("ScaledObject %s: endpoint %q, want %q", so.Metadata.Name, got, monitor)
				}
			}
		}
		for _, p := range all[*networkingv1.NetworkPolicy](r) {
			for _, rule := range p.Spec.Egress {
				if len(rule.Ports) == 1 && rule.Ports[0].Port.IntValue() == 4222 {
					if len(rule.To) != 1 || rule.To[0].NamespaceSelector == nil || rule.To[0].NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != "shared-nats" {
						t.Errorf("NetworkPolicy %s: NATS egress to %s, want namespace shared-nats", p.Name, toYAML(rule.To))
					}
				}
			}
		}
		_, c := r.stage(t, "ingester")
		if p := r.env(t, c)["NATS_PASSWORD"].Secret; p == nil || p.Name != "ingester-nats" || p.Key != "ingester" {
			t.Errorf("ingester NATS_PASSWORD from %+v, want Secret ingester-nats key ingester", p)
		}
		checkEnvIsRead(t, r)
		checkEnvIsValid(t, r)
	})
	t.Run("namespace", func(t *testing.T) {
		t.Parallel()
		r := mustHelm(t, "payments")
		for _, so := range all[*ScaledObject](r) {
			for _, tr := range so.Spec.Triggers {
				if got, want := tr.Metadata["natsServerMonitoringEndpoint"], "nats-headless.payments.svc.cluster.local:8222"; got != want {
					t.Errorf("ScaledObject %s: endpoint %q, want %q (the release's namespace)", so.Metadata.Name, got, want)
				}
			}
		}
	})
	t.Run("replicas", func(t *testing.T) {
		t.Parallel()
		r := mustHelm(t, "zen", "ingester.autoscaling.enabled=false", "ingester.replicas=5",
			"transformer.autoscaling.enabled=false", "transformer.replicas=1", "forwarder.autoscaling.minReplicas=4")
		for stage, want := range map[string]int32{"ingester": 5, "transformer": 1} {
			d, _ := r.stage(t, stage)
			if d.Spec.Replicas == nil || *d.Spec.Replicas != want {
				t.Errorf("%s replicas = %s, want %d", stage, toYAML(d.Spec.Replicas), want)
			}
			if autoscaled(r, stage) {
				t.Errorf("%s: autoscaler rendered with autoscaling.enabled=false", stage)
			}
		}
		if d, _ := r.stage(t, "forwarder"); d.Spec.Replicas != nil {
			t.Errorf("forwarder replicas = %d with its ScaledObject: the autoscaler owns them", *d.Spec.Replicas)
		}
		if got := autoscalerMin(t, r, "forwarder"); got != 4 {
			t.Errorf("forwarder ScaledObject minReplicaCount = %d, want 4", got)
		}
	})
	t.Run("images", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct{ registry, prefix string }{{"ghcr.io/acme", "ghcr.io/acme/"}, {"", ""}} {
			r := mustHelm(t, "zen", "image.registry="+tc.registry, "image.tag=v0.2.0")
			for _, w := range r.workloads() {
				repo := "zen-twilio/" + w.Pod.Containers[0].Name
				if got, want := w.Pod.Containers[0].Image, tc.prefix+repo+":v0.2.0"; got != want {
					t.Errorf("registry %q: %s %s image %q, want %q", tc.registry, w.Kind, w.Name, got, want)
				}
			}
		}
	})
	t.Run("creds file", func(t *testing.T) {
		t.Parallel()
		r := mustHelm(t, "zen", "nats.credentials.forwarder.credsSecret=zen-forwarder-creds")
		d, c := r.stage(t, "forwarder")
		env := r.env(t, c)
		if got := env["NATS_CREDS"].Value; got != "/etc/zen/nats/creds" {
			t.Errorf("forwarder NATS_CREDS = %q, want /etc/zen/nats/creds", got)
		}
		for _, v := range []string{"NATS_USER", "NATS_PASSWORD"} {
			if _, ok := env[v]; ok {
				t.Errorf("forwarder sets %s besides NATS_CREDS", v)
			}
		}
		var mounted bool
		for _, m := range c.VolumeMounts {
			for _, v := range d.Spec.Template.Spec.Volumes {
				if v.Name == m.Name && m.MountPath == "/etc/zen/nats" && v.Secret != nil && v.Secret.SecretName == "zen-forwarder-creds" {
					mounted = true
				}
			}
		}
		if !mounted {
			t.Errorf("Secret zen-forwarder-creds is not mounted at /etc/zen/nats: %s", toYAML(d.Spec.Template.Spec.Volumes))
		}
		checkEnvIsRead(t, r)
		checkEnvIsValid(t, r)
	})
}

// TestHelmBadValues: values that cannot work stop the render with an error
// naming them.
func TestHelmBadValues(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		kube string
		sets []string
		want string
	}{
		{helmKubeVersion, []string{"nats.url="}, "/nats/url"},
		{helmKubeVersion, []string{"nats.url=localhost:4222"}, "/nats/url"},
		// values.schema.json: a misspelt key, an impossible number.
		{helmKubeVersion, []string{"ingestor.replicas=2"}, "ingestor"},
		{helmKubeVersion, []string{"ingester.autoscaling.enabled=false", "ingester.replicas=0"}, "/ingester/replicas"},
		{helmKubeVersion, []string{"forwarder.port=80000"}, "/forwarder/port"},
		{helmKubeVersion, []string{"nats.existingSecret="}, "nats.existingSecret"},
		{helmKubeVersion, []string{"ingester.ingress.host="}, "ingester.ingress.host"},
		{helmKubeVersion, []string{"forwarder.autoscaling.targets=null"}, "forwarder.autoscaling.targets"},
		// preStop sleep needs 1.30 (Chart.yaml kubeVersion).
		{"v1.29.0", nil, "kubeVersion"},
	} {
		_, err := helmRender("zen", tc.kube, tc.sets...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("kube %s, --set %v: error %v, want one naming %s", tc.kube, tc.sets, err, tc.want)
		}
	}
}

// TestHelmChartCopiesAreCurrent: Helm reads only files inside the chart, so
// it holds copies of the transform package and of the NATS users; they must
// not drift from the originals.
func TestHelmChartCopiesAreCurrent(t *testing.T) {
	t.Parallel()
	src, _ := filepath.Glob(filepath.Join(sourcePackage, "*.yaml"))
	if len(src) == 0 {
		t.Fatalf("no package files in %s", sourcePackage)
	}
	pairs := map[string]string{"k8s/base/nats/auth.conf": chartDir + "/files/nats-auth.conf"}
	for _, s := range src {
		pairs[s] = filepath.Join(chartDir, "files/package", filepath.Base(s))
	}
	copies, _ := filepath.Glob(filepath.Join(chartDir, "files/package/*"))
	if len(copies) != len(src) {
		t.Errorf("%s/files/package has %d files, %s has %d", chartDir, len(copies), sourcePackage, len(src))
	}
	for orig, cp := range pairs {
		a, err := os.ReadFile(orig)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(cp)
		if err != nil || string(a) != string(b) {
			t.Errorf("%s differs from %s (%v): run cp %s deploy/%s", cp, orig, err, strings.TrimPrefix(orig, "../"), cp)
		}
	}
	r := mustHelm(t, "zen")
	if got, want := strings.Join(sortedKeys(r.configMaps()["zen-package"].Data), " "), len(src); len(strings.Fields(got)) != want {
		t.Errorf("ConfigMap zen-package holds [%s], want the %d package files", got, want)
	}
}

// TestHelmNATSDependency: NATS through the official chart, declared as a
// dependency with the condition nats.enabled. The chart repository is not
// reachable from the test, so the dependency is not rendered here; what the
// test proves is this chart's half: its values for the NATS chart name the
// users of auth.conf (the copy deploy/natsauth_test.go proves live), their
// passwords in the documented Secret, the auth ConfigMap mounted where the
// include points, services named as nats.url and the KEDA endpoint expect;
// and with nats.enabled the chart renders that ConfigMap and the NATS pods'
// NetworkPolicy of deploy/k8s.
func TestHelmNATSDependency(t *testing.T) {
	t.Parallel()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	if deps := ch.Metadata.Dependencies; len(deps) != 1 || deps[0].Name != "nats" || deps[0].Condition != "nats.enabled" ||
		deps[0].Repository != "https://nats-io.github.io/k8s/helm/charts/" || deps[0].Version == "" {
		t.Fatalf("Chart.yaml dependencies = %s, want the official nats chart under the condition nats.enabled", toYAML(deps))
	}
	vals := ch.Values
	if dig(t, vals, "nats", "enabled") != false {
		t.Errorf("nats.enabled defaults to true: `helm install` would need the dependency downloaded first")
	}
	if got := dig(t, vals, "nats", "fullnameOverride"); got != "nats" || hostOf(t, dig(t, vals, "nats", "url").(string)) != "nats" {
		t.Errorf("nats.fullnameOverride = %v: the NATS chart's Services must be nats and nats-headless, as nats.url and the KEDA endpoint expect", got)
	}

	// The users: auth.conf's password variables, each from the Secret.
	auth, err := os.ReadFile("k8s/base/nats/auth.conf")
	if err != nil {
		t.Fatal(err)
	}
	var wantVars []string
	for _, m := range regexp.MustCompile(`\$(ZEN_NATS_\w+)`).FindAllStringSubmatch(string(auth), -1) {
		wantVars = append(wantVars, m[1])
	}
	env := dig(t, vals, "nats", "container", "env").(map[string]any)
	var gotVars []string
	secret := dig(t, vals, "nats", "existingSecret")
	for name := range env {
		if !strings.HasPrefix(name, "ZEN_NATS_") {
			continue
		}
		gotVars = append(gotVars, name)
		ref := dig(t, env, name, "valueFrom", "secretKeyRef").(map[string]any)
		if ref["name"] != secret || !contains(secretRefs["zen-nats-users"], fmt.Sprint(ref["key"])) {
			t.Errorf("nats.container.env.%s from %v, want a key of the Secret %v (%v)", name, ref, secret, secretRefs["zen-nats-users"])
		}
	}
	sort.Strings(wantVars)
	sort.Strings(gotVars)
	if strings.Join(gotVars, " ") != strings.Join(wantVars, " ") {
		t.Errorf("nats.container.env sets %v, auth.conf reads %v", gotVars, wantVars)
	}

	// auth.conf is included from where the ConfigMap zen-nats-auth is mounted.
	include := dig(t, vals, "nats", "config", "merge", "zz$include").(string)
	mount := dig(t, vals, "nats", "container", "patch").([]any)[0].(map[string]any)["value"].(map[string]any)
	volume := dig(t, vals, "nats", "podTemplate", "patch").([]any)[0].(map[string]any)["value"].(map[string]any)
	if got, want := filepath.Join("/etc/nats-config", include), filepath.Join(fmt.Sprint(mount["mountPath"]), "auth.conf"); got != want {
		t.Errorf("nats.config.merge includes %s, but auth.conf is mounted at %s", got, want)
	}
	if mount["name"] != volume["name"] || dig(t, volume, "configMap", "name") != "zen-nats-auth" {
		t.Errorf("the NATS container mounts %v, the pod's volume is %v: want the ConfigMap zen-nats-auth", mount, volume)
	}
	// The capacity check's NATS memory is the NATS container's limit.
	limit, err := resource.ParseQuantity(fmt.Sprint(dig(t, vals, "nats", "container", "resources", "limits", "memory")))
	if err != nil {
		t.Fatal(err)
	}
	if got := dig(t, vals, "capacity", "NATS_MEMORY_LIMIT"); got != fmt.Sprint(limit.Value()) {
		t.Errorf("capacity.NATS_MEMORY_LIMIT = %v, but the NATS container's memory limit is %s", got, limit.String())
	}

	r := mustHelm(t, "zen", "nats.enabled=true")
	cm, ok := r.configMaps()["zen-nats-auth"]
	if !ok {
		t.Fatalf("nats.enabled=true renders no ConfigMap zen-nats-auth")
	}
	if cm.Data["auth.conf"] != string(auth) {
		t.Errorf("ConfigMap zen-nats-auth differs from deploy/k8s/base/nats/auth.conf")
	}
	kust := mustRender(t, "prod")
	k := normalized(t, Object{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy", Typed: one[*networkingv1.NetworkPolicy](t, kust, "nats")}, nil)
	c := normalized(t, Object{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy", Typed: one[*networkingv1.NetworkPolicy](t, r, "nats")}, nil)
	if path, ok := covered(k, c, ""); !ok {
		t.Errorf("NetworkPolicy nats: the chart differs from kustomize at %s", path)
	}
	checkEnvIsValid(t, r)
}

// dig returns the value at path in nested maps, failing when absent.
func dig(t *testing.T, m map[string]any, path ...string) any {
	t.Helper()
	var v any = m
	for _, p := range path {
		mm, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("values: %s is not a map", strings.Join(path, "."))
		}
		if v, ok = mm[p]; !ok {
			t.Fatalf("values: no %s", strings.Join(path, "."))
		}
	}
	return v
}

package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// The kustomizations under test, by the name the tests use.
var kustomizations = map[string]string{
	"base": "k8s/base",
	"dev":  "k8s/overlays/dev",
	"prod": "k8s/overlays/prod",
	// An operator's nats-box, applied by hand (deploy/k8s/README.md).
	"tools": "k8s/tools",
	// prod as an operator deploys it in another namespace: its
	// kustomization's `namespace:` edited (otherNamespace), nothing else.
	"prod-payments": "k8s/overlays/prod",
}

// otherNamespace are the kustomizations rendered with their `namespace:`
// changed, by name.
var otherNamespace = map[string]string{"prod-payments": "payments"}

// withNamespace returns an in-memory copy of deploy/k8s in which the
// kustomization in dir sets namespace ns instead of its own.
func withNamespace(dir, ns string) (filesys.FileSystem, error) {
	fs := filesys.MakeFsInMemory()
	err := filepath.WalkDir("k8s", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if filepath.Dir(path) == dir && d.Name() == "kustomization.yaml" {
			re := regexp.MustCompile(`(?m)^namespace: \S+$`)
			if !re.Match(b) {
				return fmt.Errorf("%s sets no namespace", path)
			}
			b = re.ReplaceAll(b, []byte("namespace: "+ns))
		}
		return fs.WriteFile(path, b)
	})
	return fs, err
}

// overlays are the kustomizations users apply.
var overlays = []string{"dev", "prod"}

// Object is one rendered manifest, decoded strictly into its type.
type Object struct {
	APIVersion, Kind, Name, Namespace string
	// Typed is a pointer to the k8s.io/api struct (or one of the CRD structs
	// below) the object decoded into.
	Typed any
}

// Rendered is the output of one kustomization.
type Rendered struct {
	Name    string
	Objects []Object
}

var (
	renderMu    sync.Mutex
	renderCache = map[string]*Rendered{}
)

// mustRender renders the named kustomization with krusty on the real
// filesystem (once per test binary) and decodes every object strictly.
func mustRender(tb testing.TB, name string) *Rendered {
	tb.Helper()
	renderMu.Lock()
	defer renderMu.Unlock()
	if r, ok := renderCache[name]; ok {
		return r
	}
	r, err := render(name)
	if err != nil {
		tb.Fatalf("render %s: %v", name, err)
	}
	renderCache[name] = r
	return r
}

func render(name string) (*Rendered, error) {
	dir, ok := kustomizations[name]
	if !ok {
		return nil, fmt.Errorf("unknown kustomization %q", name)
	}
	fs := filesys.MakeFsOnDisk()
	if ns, ok := otherNamespace[name]; ok {
		var err error
		if fs, err = withNamespace(dir, ns); err != nil {
			return nil, err
		}
	}
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(fs, dir)
	if err != nil {
		return nil, err
	}
	out := &Rendered{Name: name}
	for _, res := range m.Resources() {
		b, err := res.AsYAML()
		if err != nil {
			return nil, err
		}
		o, err := decodeObject(b)
		if err != nil {
			return nil, fmt.Errorf("%s %w", name, err)
		}
		out.Objects = append(out.Objects, o)
	}
	return out, nil
}

// decodeObject decodes one rendered manifest strictly into its type.
func decodeObject(b []byte) (Object, error) {
	var head struct {
		APIVersion string            `json:"apiVersion"`
		Kind       string            `json:"kind"`
		Metadata   metav1.ObjectMeta `json:"metadata"`
	}
	if err := yaml.Unmarshal(b, &head); err != nil {
		return Object{}, err
	}
	typed, err := decodeStrict(head.APIVersion, head.Kind, b)
	if err != nil {
		return Object{}, fmt.Errorf("%s/%s: %w", head.Kind, head.Metadata.Name, err)
	}
	return Object{
		APIVersion: head.APIVersion, Kind: head.Kind,
		Name: head.Metadata.Name, Namespace: head.Metadata.Namespace, Typed: typed,
	}, nil
}

// decodeStrict decodes b into the Go type of apiVersion/kind, failing on any
// field the type does not have (sigs.k8s.io/yaml's UnmarshalStrict converts
// to JSON and decodes with DisallowUnknownFields). An unknown kind fails:
// every kind we ship is listed here.
func decodeStrict(apiVersion, kind string, b []byte) (any, error) {
	var v any
	switch apiVersion + "/" + kind {
	case "v1/ConfigMap":
		v = &corev1.ConfigMap{}
	case "v1/Secret":
		v = &corev1.Secret{}
	case "v1/Service":
		v = &corev1.Service{}
	case "v1/Pod":
		v = &corev1.Pod{}
	case "v1/ServiceAccount":
		v = &corev1.ServiceAccount{}
	case "apps/v1/Deployment":
		v = &appsv1.Deployment{}
	case "apps/v1/StatefulSet":
		v = &appsv1.StatefulSet{}
	case "batch/v1/Job":
		v = &batchv1.Job{}
	case "autoscaling/v2/HorizontalPodAutoscaler":
		v = &autoscalingv2.HorizontalPodAutoscaler{}
	case "policy/v1/PodDisruptionBudget":
		v = &policyv1.PodDisruptionBudget{}
	case "networking.k8s.io/v1/NetworkPolicy":
		v = &networkingv1.NetworkPolicy{}
	case "networking.k8s.io/v1/Ingress":
		v = &networkingv1.Ingress{}
	case "keda.sh/v1alpha1/ScaledObject":
		v = &ScaledObject{}
	case "monitoring.coreos.com/v1/PrometheusRule":
		v = &PrometheusRule{}
	case "monitoring.coreos.com/v1/PodMonitor":
		v = &PodMonitor{}
	default:
		return nil, fmt.Errorf("no Go type registered for %s %s: add it to decodeStrict", apiVersion, kind)
	}
	if err := yaml.UnmarshalStrict(b, v); err != nil {
		return nil, err
	}
	// Round trip: what the typed struct keeps must be what was written, so a
	// field silently dropped by a custom unmarshaller shows up too.
	back, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	if err := sameJSON(b, back); err != nil {
		return nil, err
	}
	return v, nil
}

// sameJSON reports the first field of the rendered YAML that the typed
// struct did not keep.
func sameJSON(rendered, typed []byte) error {
	var a, b any
	j, err := yaml.YAMLToJSON(rendered)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(j, &a); err != nil {
		return err
	}
	if err := json.Unmarshal(typed, &b); err != nil {
		return err
	}
	if path, ok := covered(a, b, ""); !ok {
		return fmt.Errorf("field %s is lost when decoded into its type", path)
	}
	return nil
}

// covered reports whether every leaf of a is present in b with the same value.
func covered(a, b any, path string) (string, bool) {
	switch av := a.(type) {
	case map[string]any:
		bv, ok := b.(map[string]any)
		if !ok {
			return path, false
		}
		for k, v := range av {
			if p, ok := covered(v, bv[k], path+"."+k); !ok {
				return p, false
			}
		}
		return "", true
	case []any:
		bv, ok := b.([]any)
		if !ok || len(bv) != len(av) {
			return path, false
		}
		for i := range av {
			if p, ok := covered(av[i], bv[i], fmt.Sprintf("%s[%d]", path, i)); !ok {
				return p, false
			}
		}
		return "", true
	default:
		if fmt.Sprint(a) == fmt.Sprint(b) {
			return "", true
		}
		// Quantities and ints may be re-spelled ("2" vs 2): compare as text.
		if strings.Trim(fmt.Sprint(a), `"`) == strings.Trim(fmt.Sprint(b), `"`) {
			return "", true
		}
		return fmt.Sprintf("%s (%v, kept as %v)", path, a, b), false
	}
}

// ScaledObject is the part of KEDA's keda.sh/v1alpha1 ScaledObject schema
// the manifests use; decoding is strict, so a misspelt field fails.
type ScaledObject struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	Spec       ScaledObjectSpec  `json:"spec"`
}

// ScaledObjectSpec is KEDA's ScaledObjectSpec (the fields we use).
type ScaledObjectSpec struct {
	ScaleTargetRef struct {
		APIVersion string `json:"apiVersion,omitempty"`
		Kind       string `json:"kind,omitempty"`
		Name       string `json:"name"`
	} `json:"scaleTargetRef"`
	PollingInterval *int32 `json:"pollingInterval,omitempty"`
	CooldownPeriod  *int32 `json:"cooldownPeriod,omitempty"`
	MinReplicaCount *int32 `json:"minReplicaCount,omitempty"`
	MaxReplicaCount *int32 `json:"maxReplicaCount,omitempty"`
	Triggers        []struct {
		Type string `json:"type"`
		Name string `json:"name,omitempty"`
		// KEDA takes every trigger metadata value as a string.
		Metadata   map[string]string `json:"metadata"`
		MetricType string            `json:"metricType,omitempty"`
	} `json:"triggers"`
}

// PrometheusRule is the Prometheus Operator's monitoring.coreos.com/v1
// PrometheusRule (the fields we use).
type PrometheusRule struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	Spec       struct {
		Groups []struct {
			Name     string `json:"name"`
			Interval string `json:"interval,omitempty"`
			Rules    []struct {
				Alert       string            `json:"alert,omitempty"`
				Record      string            `json:"record,omitempty"`
				Expr        string            `json:"expr"`
				For         string            `json:"for,omitempty"`
				Labels      map[string]string `json:"labels,omitempty"`
				Annotations map[string]string `json:"annotations,omitempty"`
			} `json:"rules"`
		} `json:"groups"`
	} `json:"spec"`
}

// PodMonitor is the Prometheus Operator's monitoring.coreos.com/v1
// PodMonitor (the fields we use).
type PodMonitor struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	Spec       struct {
		JobLabel        string               `json:"jobLabel,omitempty"`
		PodTargetLabels []string             `json:"podTargetLabels,omitempty"`
		Selector        metav1.LabelSelector `json:"selector"`
		// NamespaceSelector: empty means the PodMonitor's own namespace.
		NamespaceSelector *struct {
			Any        bool     `json:"any,omitempty"`
			MatchNames []string `json:"matchNames,omitempty"`
		} `json:"namespaceSelector,omitempty"`
		PodMetricsEndpoints []struct {
			Port     string `json:"port"`
			Path     string `json:"path,omitempty"`
			Scheme   string `json:"scheme,omitempty"`
			Interval string `json:"interval,omitempty"`
		} `json:"podMetricsEndpoints"`
	} `json:"spec"`
}

// all returns the objects of type T.
func all[T any](r *Rendered) []T {
	var out []T
	for _, o := range r.Objects {
		if v, ok := o.Typed.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

// one returns the object of type T named name, failing the test if absent.
func one[T interface{ GetName() string }](tb testing.TB, r *Rendered, name string) T {
	tb.Helper()
	for _, v := range all[T](r) {
		if v.GetName() == name {
			return v
		}
	}
	var zero T
	tb.Fatalf("%s: no %T named %q", r.Name, zero, name)
	return zero
}

func (s *ScaledObject) GetName() string   { return s.Metadata.Name }
func (p *PrometheusRule) GetName() string { return p.Metadata.Name }
func (p *PodMonitor) GetName() string     { return p.Metadata.Name }

// configMaps returns the rendered ConfigMaps by their (hashed) names.
func (r *Rendered) configMaps() map[string]*corev1.ConfigMap {
	out := map[string]*corev1.ConfigMap{}
	for _, cm := range all[*corev1.ConfigMap](r) {
		out[cm.Name] = cm
	}
	return out
}

// Workload is a pod template with its owner.
type Workload struct {
	Kind, Name string
	Replicas   *int32
	Labels     map[string]string
	// Annotations are the pod template's.
	Annotations map[string]string
	Pod         *corev1.PodSpec
}

// workloads returns every pod template: Deployments, StatefulSets, Jobs.
func (r *Rendered) workloads() []Workload {
	var out []Workload
	for _, d := range all[*appsv1.Deployment](r) {
		out = append(out, Workload{"Deployment", d.Name, d.Spec.Replicas, d.Spec.Template.Labels, d.Spec.Template.Annotations, &d.Spec.Template.Spec})
	}
	for _, s := range all[*appsv1.StatefulSet](r) {
		out = append(out, Workload{"StatefulSet", s.Name, s.Spec.Replicas, s.Spec.Template.Labels, s.Spec.Template.Annotations, &s.Spec.Template.Spec})
	}
	for _, j := range all[*batchv1.Job](r) {
		out = append(out, Workload{"Job", j.Name, nil, j.Spec.Template.Labels, j.Spec.Template.Annotations, &j.Spec.Template.Spec})
	}
	for _, p := range all[*corev1.Pod](r) {
		out = append(out, Workload{"Pod", p.Name, nil, p.Labels, p.Annotations, &p.Spec})
	}
	return out
}

// EnvVar is one resolved environment variable of a container.
type EnvVar struct {
	Name string
	// Value is the literal or ConfigMap value; empty for the other sources.
	Value string
	// Source is "literal", "configmap", "secret" or "field".
	Source string
	// Secret names the Secret and key of a secret reference.
	Secret *corev1.SecretKeySelector
}

// env resolves a container's environment as the kubelet does: envFrom
// ConfigMaps first (in order), then env, later entries winning. A reference
// to a ConfigMap that is not rendered fails the test.
func (r *Rendered) env(tb testing.TB, c corev1.Container) map[string]EnvVar {
	tb.Helper()
	cms := r.configMaps()
	out := map[string]EnvVar{}
	for _, ef := range c.EnvFrom {
		switch {
		case ef.ConfigMapRef != nil:
			cm, ok := cms[ef.ConfigMapRef.Name]
			if !ok {
				tb.Fatalf("%s: container %s: envFrom ConfigMap %q is not rendered", r.Name, c.Name, ef.ConfigMapRef.Name)
			}
			for k, v := range cm.Data {
				out[ef.Prefix+k] = EnvVar{Name: ef.Prefix + k, Value: v, Source: "configmap"}
			}
		case ef.SecretRef != nil:
			tb.Errorf("%s: container %s: envFrom Secret %q: reference secret keys one by one, so the variables are known", r.Name, c.Name, ef.SecretRef.Name)
		}
	}
	for _, e := range c.Env {
		v := EnvVar{Name: e.Name, Value: e.Value, Source: "literal"}
		if e.ValueFrom != nil {
			switch {
			case e.ValueFrom.SecretKeyRef != nil:
				v = EnvVar{Name: e.Name, Source: "secret", Secret: e.ValueFrom.SecretKeyRef}
			case e.ValueFrom.ConfigMapKeyRef != nil:
				ref := e.ValueFrom.ConfigMapKeyRef
				cm, ok := cms[ref.Name]
				if !ok {
					tb.Fatalf("%s: container %s: env %s: ConfigMap %q is not rendered", r.Name, c.Name, e.Name, ref.Name)
				}
				val, ok := cm.Data[ref.Key]
				if !ok {
					tb.Fatalf("%s: container %s: env %s: ConfigMap %q has no key %q", r.Name, c.Name, e.Name, ref.Name, ref.Key)
				}
				v = EnvVar{Name: e.Name, Value: val, Source: "configmap"}
			default:
				v = EnvVar{Name: e.Name, Source: "field"}
			}
		}
		out[e.Name] = v
	}
	return out
}

// container returns the named container of a pod.
func container(tb testing.TB, pod *corev1.PodSpec, name string) corev1.Container {
	tb.Helper()
	for _, c := range pod.Containers {
		if c.Name == name {
			return c
		}
	}
	tb.Fatalf("no container %q", name)
	return corev1.Container{}
}

// deployment returns the stage's Deployment and its main container.
func (r *Rendered) stage(tb testing.TB, name string) (*appsv1.Deployment, corev1.Container) {
	tb.Helper()
	d := one[*appsv1.Deployment](tb, r, name)
	return d, container(tb, &d.Spec.Template.Spec, name)
}

// portOf resolves a probe's or backend's port (number or name) to a number.
func portOf(tb testing.TB, c corev1.Container, p intstr.IntOrString) int32 {
	tb.Helper()
	if p.Type == intstr.Int {
		return p.IntVal
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return cp.ContainerPort
		}
	}
	tb.Fatalf("container %s has no port named %q", c.Name, p.StrVal)
	return 0
}

// listenPort is the port of a LISTEN_ADDR value such as ":8080".
func listenPort(tb testing.TB, addr string) string {
	tb.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		tb.Fatalf("LISTEN_ADDR %q: %v", addr, err)
	}
	return port
}

// hostOf is the host of an absolute URL.
func hostOf(tb testing.TB, raw string) string {
	tb.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		tb.Fatalf("parse %q: %v", raw, err)
	}
	return u.Hostname()
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// selects reports whether a label selector (matchLabels and In/NotIn/Exists
// expressions) selects labels.
func selects(sel *metav1.LabelSelector, labels map[string]string) bool {
	if sel == nil {
		return false
	}
	for k, v := range sel.MatchLabels {
		if labels[k] != v {
			return false
		}
	}
	for _, e := range sel.MatchExpressions {
		v, has := labels[e.Key]
		switch e.Operator {
		case metav1.LabelSelectorOpIn:
			if !has || !contains(e.Values, v) {
				return false
			}
		case metav1.LabelSelectorOpNotIn:
			if has && contains(e.Values, v) {
				return false
			}
		case metav1.LabelSelectorOpExists:
			if !has {
				return false
			}
		case metav1.LabelSelectorOpDoesNotExist:
			if has {
				return false
			}
		}
	}
	return true
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// toYAML is for failure messages.
func toYAML(v any) string {
	b, err := yaml.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(bytes.TrimSpace(b))
}

// Short names for the typed objects the tests look up by name.
type (
	jobT         = batchv1.Job
	statefulSetT = appsv1.StatefulSet
	hpaT         = autoscalingv2.HorizontalPodAutoscaler
)

type deploymentT = appsv1.Deployment

func itoa(n int32) string { return fmt.Sprint(n) }

func secretKey(name, key string) *corev1.SecretKeySelector {
	return &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: key}
}

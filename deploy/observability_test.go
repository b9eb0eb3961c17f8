package deploy

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// exporterMetrics are the JetStream metrics prometheus-nats-exporter serves
// with -jsz=all (collector/jsz.go of nats-io/prometheus-nats-exporter).
var exporterMetrics = []string{
	"jetstream_server_jetstream_disabled", "jetstream_server_total_streams", "jetstream_server_total_consumers",
	"jetstream_server_total_messages", "jetstream_server_total_message_bytes", "jetstream_server_max_memory",
	"jetstream_server_max_storage", "jetstream_stream_total_messages", "jetstream_stream_total_bytes",
	"jetstream_stream_first_seq", "jetstream_stream_last_seq", "jetstream_stream_consumer_count",
	"jetstream_consumer_delivered_consumer_seq", "jetstream_consumer_delivered_stream_seq",
	"jetstream_consumer_num_ack_pending", "jetstream_consumer_num_redelivered", "jetstream_consumer_num_waiting",
	"jetstream_consumer_num_pending", "jetstream_consumer_ack_floor_stream_seq", "jetstream_consumer_ack_floor_consumer_seq",
}

var (
	metricDecl = regexp.MustCompile(`Name(?::|\s*=)\s*"(zen_[a-z0-9_]+)"`)
	metricUse  = regexp.MustCompile(`\b((?:zen|jetstream)_[a-z0-9_]+)\b`)
)

// serviceMetrics are the metric names the services register, read from
// their sources (services/*/metrics.go, pkg/worker/metrics.go,
// pkg/buildinfo).
func serviceMetrics(tb testing.TB) map[string]bool {
	tb.Helper()
	files, err := filepath.Glob("../services/*/metrics.go")
	if err != nil {
		tb.Fatal(err)
	}
	files = append(files, "../pkg/worker/metrics.go", "../pkg/buildinfo/buildinfo.go")
	out := map[string]bool{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		for _, m := range metricDecl.FindAllSubmatch(b, -1) {
			out[string(m[1])] = true
		}
	}
	if len(out) < 10 {
		tb.Fatalf("found only %d metric declarations in %v: has the metrics code moved?", len(out), files)
	}
	return out
}

// checkMetricNames reports every metric an expression uses that nothing
// exports (a histogram's _bucket, _sum and _count count as the histogram).
func checkMetricNames(t *testing.T, where, expr string, known map[string]bool) {
	t.Helper()
	for _, m := range metricUse.FindAllString(expr, -1) {
		base := m
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if strings.HasSuffix(m, suf) && known[strings.TrimSuffix(m, suf)] {
				base = strings.TrimSuffix(m, suf)
			}
		}
		if !known[base] {
			t.Errorf("%s uses metric %s, which no service or the NATS exporter exports", where, m)
		}
	}
}

// TestAlertRules: the PrometheusRule covers the alerts that matter, every
// rule is complete, and every metric it uses exists.
func TestAlertRules(t *testing.T) {
	t.Parallel()
	known := serviceMetrics(t)
	for _, m := range exporterMetrics {
		known[m] = true
	}
	r := mustRender(t, "prod")
	pr := one[*PrometheusRule](t, r, "zen-twilio")
	alerts := map[string]string{}
	for _, g := range pr.Spec.Groups {
		for _, rule := range g.Rules {
			if rule.Alert == "" {
				t.Errorf("group %s: a rule without alert name", g.Name)
				continue
			}
			alerts[rule.Alert] = rule.Expr
			checkMetricNames(t, "alert "+rule.Alert, rule.Expr, known)
			if rule.For != "" {
				if _, err := time.ParseDuration(rule.For); err != nil {
					t.Errorf("alert %s: for %q: %v", rule.Alert, rule.For, err)
				}
			}
			if rule.Labels["severity"] == "" || rule.Annotations["summary"] == "" {
				t.Errorf("alert %s needs a severity label and a summary", rule.Alert)
			}
			if strings.Count(rule.Expr, "(") != strings.Count(rule.Expr, ")") {
				t.Errorf("alert %s: unbalanced parentheses in %q", rule.Alert, rule.Expr)
			}
		}
	}
	for name, mustUse := range map[string]string{
		"ZenDeadLettersGrowing":     `ZEN_DLQ`,
		"ZenConsumerLagHigh":        `jetstream_consumer_num_pending`,
		"ZenIngester5xxRate":        `zen_ingester_requests_total{code=~"5.."}`,
		"ZenSignatureFailuresSpike": `zen_ingester_signature_failures_total`,
	} {
		if !strings.Contains(alerts[name], mustUse) {
			t.Errorf("alert %s missing or not about %s", name, mustUse)
		}
	}
}

// TestDashboard: the Grafana dashboard is valid JSON shipped in a labelled
// ConfigMap, and its queries use only metrics that exist.
func TestDashboard(t *testing.T) {
	t.Parallel()
	known := serviceMetrics(t)
	for _, m := range exporterMetrics {
		known[m] = true
	}
	r := mustRender(t, "prod")
	cm := one[*corev1.ConfigMap](t, r, "zen-grafana-dashboard")
	if cm.Labels["grafana_dashboard"] != "1" {
		t.Errorf("dashboard ConfigMap labels %v: the Grafana sidecar looks for grafana_dashboard=1", cm.Labels)
	}
	var dash struct {
		UID    string `json:"uid"`
		Title  string `json:"title"`
		Panels []struct {
			ID      int    `json:"id"`
			Type    string `json:"type"`
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal([]byte(cm.Data["zen-twilio.json"]), &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	if dash.UID == "" || dash.Title == "" {
		t.Errorf("dashboard needs a uid and a title")
	}
	ids := map[int]bool{}
	var queries int
	for _, p := range dash.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			queries++
			checkMetricNames(t, "panel "+p.Title, q.Expr, known)
		}
	}
	if queries < 10 {
		t.Errorf("dashboard has %d queries, want the pipeline covered", queries)
	}
}

// TestScrapeAnnotations: Prometheus scrapes every stage on the port it
// serves /metrics on, and NATS through its exporter sidecar.
func TestScrapeAnnotations(t *testing.T) {
	t.Parallel()
	r := mustRender(t, "prod")
	for _, s := range stages {
		d, c := r.stage(t, s)
		a := d.Spec.Template.Annotations
		if a["prometheus.io/scrape"] != "true" || a["prometheus.io/path"] != "/metrics" ||
			a["prometheus.io/port"] != listenPort(t, r.env(t, c)["LISTEN_ADDR"].Value) {
			t.Errorf("%s scrape annotations %v do not match LISTEN_ADDR", s, a)
		}
	}
	sts := one[*statefulSetT](t, r, "nats")
	exp := container(t, &sts.Spec.Template.Spec, "exporter")
	var ports []string
	for _, p := range exp.Ports {
		ports = append(ports, itoa(p.ContainerPort))
	}
	sort.Strings(ports)
	if got := sts.Spec.Template.Annotations["prometheus.io/port"]; !contains(ports, got) {
		t.Errorf("nats scrape port %q is not the exporter's (%v)", got, ports)
	}
}

// TestPodMonitors: the Prometheus Operator, which ignores the prometheus.io
// annotations, scrapes every stage and NATS: each workload is selected by
// one PodMonitor, whose endpoint names a port of the pod's containers that
// is the port the pod's annotation (and, for a stage, LISTEN_ADDR) names;
// the monitors select in their own namespace and carry the label the
// PrometheusRule does, so the same Prometheus picks up both.
func TestPodMonitors(t *testing.T) {
	t.Parallel()
	r := mustRender(t, "prod")
	rule := one[*PrometheusRule](t, r, "zen-twilio")
	monitors := all[*PodMonitor](r)
	scraped := map[string]bool{}
	for _, pm := range monitors {
		if got, want := pm.Metadata.Labels["release"], rule.Metadata.Labels["release"]; got != want {
			t.Errorf("PodMonitor %s: label release=%q, the PrometheusRule has %q", pm.Metadata.Name, got, want)
		}
		if pm.Spec.NamespaceSelector != nil {
			t.Errorf("PodMonitor %s: a namespaceSelector ties it to namespaces; leave it out (its own namespace)", pm.Metadata.Name)
		}
		if len(pm.Spec.PodMetricsEndpoints) == 0 {
			t.Errorf("PodMonitor %s has no endpoint", pm.Metadata.Name)
		}
		var selected int
		for _, w := range r.workloads() {
			if !selects(&pm.Spec.Selector, w.Labels) {
				continue
			}
			selected++
			if scraped[w.Name] {
				t.Errorf("%s %s is selected by two PodMonitors (scraped twice)", w.Kind, w.Name)
			}
			scraped[w.Name] = true
			if _, ok := w.Labels[pm.Spec.JobLabel]; pm.Spec.JobLabel != "" && !ok {
				t.Errorf("PodMonitor %s: jobLabel %s is not a label of %s's pods", pm.Metadata.Name, pm.Spec.JobLabel, w.Name)
			}
			for _, ep := range pm.Spec.PodMetricsEndpoints {
				port, ok := namedPort(w.Pod, ep.Port)
				if !ok {
					t.Errorf("PodMonitor %s: %s %s has no container port named %q", pm.Metadata.Name, w.Kind, w.Name, ep.Port)
					continue
				}
				if ep.Path != "/metrics" {
					t.Errorf("PodMonitor %s: path %q, want /metrics", pm.Metadata.Name, ep.Path)
				}
				if ann := w.Annotations["prometheus.io/port"]; ann != itoa(port) {
					t.Errorf("PodMonitor %s scrapes %s on port %d, its prometheus.io/port annotation says %q", pm.Metadata.Name, w.Name, port, ann)
				}
				if contains(stages, w.Name) {
					c := container(t, w.Pod, w.Name)
					if want := listenPort(t, r.env(t, c)["LISTEN_ADDR"].Value); itoa(port) != want {
						t.Errorf("PodMonitor %s scrapes %s on port %d, LISTEN_ADDR serves /metrics on %s", pm.Metadata.Name, w.Name, port, want)
					}
				}
			}
		}
		if selected == 0 {
			t.Errorf("PodMonitor %s selects no pod", pm.Metadata.Name)
		}
	}
	for _, w := range append(append([]string(nil), stages...), "nats") {
		if !scraped[w] {
			t.Errorf("no PodMonitor scrapes %s", w)
		}
	}
}

// namedPort returns the container port named name of any container of pod.
func namedPort(pod *corev1.PodSpec, name string) (int32, bool) {
	for _, c := range pod.Containers {
		for _, p := range c.Ports {
			if p.Name == name {
				return p.ContainerPort, true
			}
		}
	}
	return 0, false
}

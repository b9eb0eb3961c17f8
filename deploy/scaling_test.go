package deploy

import (
	"fmt"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"

	"github.com/zen-twilio/zen/pkg/streams"
	"github.com/zen-twilio/zen/services/forwarder"
	"github.com/zen-twilio/zen/services/transformer"
)

// TestKEDAScalesOnConsumerLag: the transformer scales on the lag of the
// durable `transformer` on TWILIO_RAW; the forwarder on the lag of one
// `forwarder-<target>` on ZEN_EVENTS per target the package routes events
// to. The monitoring endpoint is this namespace's headless NATS service,
// also when prod is deployed in another namespace.
func TestKEDAScalesOnConsumerLag(t *testing.T) {
	t.Parallel()
	want := map[string][]string{
		"transformer": {streams.StreamRaw + "/" + streams.ConsumerTransformer},
	}
	for _, rt := range routes(t) {
		want["forwarder"] = append(want["forwarder"], streams.StreamEvents+"/"+streams.ForwarderConsumer(rt.Target))
	}
	// prod-payments: prod in another namespace, so the endpoint follows it.
	for _, ov := range []string{"base", "prod", "prod-payments"} {
		r := mustRender(t, ov)
		headless := one[*corev1.Service](t, r, "nats-headless")
		for name, consumers := range want {
			so := one[*ScaledObject](t, r, name)
			if so.Spec.ScaleTargetRef.Name != name || (so.Spec.ScaleTargetRef.Kind != "" && so.Spec.ScaleTargetRef.Kind != "Deployment") {
				t.Errorf("%s: ScaledObject %s targets %+v", ov, name, so.Spec.ScaleTargetRef)
			}
			one[*appsv1.Deployment](t, r, so.Spec.ScaleTargetRef.Name)
			if deref(so.Spec.MaxReplicaCount) <= deref(so.Spec.MinReplicaCount) {
				t.Errorf("%s: ScaledObject %s cannot scale: min %d, max %d", ov, name, deref(so.Spec.MinReplicaCount), deref(so.Spec.MaxReplicaCount))
			}
			var got []string
			for _, tr := range so.Spec.Triggers {
				if tr.Type != "nats-jetstream" {
					t.Errorf("%s: %s trigger type %q, want nats-jetstream", ov, name, tr.Type)
					continue
				}
				got = append(got, tr.Metadata["stream"]+"/"+tr.Metadata["consumer"])
				if tr.Metadata["account"] != "$G" {
					t.Errorf("%s: %s account = %q, want $G (users, no accounts, in nats.conf)", ov, name, tr.Metadata["account"])
				}
				if tr.Metadata["lagThreshold"] == "" {
					t.Errorf("%s: %s has no lagThreshold", ov, name)
				}
				wantEP := fmt.Sprintf("%s.%s.svc.cluster.local:8222", headless.Name, so.Metadata.Namespace)
				if ep := tr.Metadata["natsServerMonitoringEndpoint"]; ep != wantEP {
					t.Errorf("%s: %s natsServerMonitoringEndpoint = %q, want %q (the headless service of this namespace)", ov, name, ep, wantEP)
				}
			}
			if strings.Join(got, ",") != strings.Join(consumers, ",") {
				t.Errorf("%s: %s scales on %v, want the consumers %v", ov, name, got, consumers)
			}
		}
		if !servicePort(headless, 8222) {
			t.Errorf("%s: nats-headless does not expose the monitoring port 8222", ov)
		}
	}
}

// TestScaledInFlightFitsMaxAckPending: at its autoscaler's maximum, every
// replica of the transformer and of the forwarder can fill its handlers: the
// replicas' concurrency together stays within the consumer's MaxAckPending,
// which bounds the messages in flight across all of them (deploy/k8s/README.md).
func TestScaledInFlightFitsMaxAckPending(t *testing.T) {
	t.Parallel()
	for _, ov := range []string{"base", "prod"} {
		r := mustRender(t, ov)
		for _, name := range []string{"transformer", "forwarder"} {
			_, c := r.stage(t, name)
			env := lookupFor(r.env(t, c), nil)
			var conc, maxAckPending int
			switch name {
			case "transformer":
				cfg, err := transformer.ConfigFromEnv(env)
				if err != nil {
					t.Fatalf("%s: transformer.ConfigFromEnv: %v", ov, err)
				}
				conc, maxAckPending = cfg.Concurrency, cfg.Consumer.MaxAckPending
			case "forwarder":
				cfg, err := forwarder.ConfigFromEnv(env)
				if err != nil {
					t.Fatalf("%s: forwarder.ConfigFromEnv: %v", ov, err)
				}
				conc, maxAckPending = cfg.Concurrency, cfg.Consumer.MaxAckPending
			}
			maxReplicas := int(deref(one[*ScaledObject](t, r, name).Spec.MaxReplicaCount))
			if maxReplicas*conc > maxAckPending {
				t.Errorf("%s: %s: maxReplicaCount %d × concurrency %d = %d messages in flight, above the consumer's MaxAckPending %d: replicas past %d would wait for acks",
					ov, name, maxReplicas, conc, maxReplicas*conc, maxAckPending, maxAckPending/conc)
			}
		}
	}
}

func servicePort(s *corev1.Service, port int32) bool {
	for _, p := range s.Spec.Ports {
		if p.Port == port {
			return true
		}
	}
	return false
}

// TestIngesterHPA: the ingester scales on CPU, which needs CPU requests.
func TestIngesterHPA(t *testing.T) {
	t.Parallel()
	r := mustRender(t, "prod")
	hpa := one[*autoscalingv2.HorizontalPodAutoscaler](t, r, "ingester")
	if hpa.Spec.ScaleTargetRef.Kind != "Deployment" || hpa.Spec.ScaleTargetRef.Name != "ingester" {
		t.Errorf("HPA targets %+v", hpa.Spec.ScaleTargetRef)
	}
	if len(hpa.Spec.Metrics) != 1 || hpa.Spec.Metrics[0].Resource == nil || hpa.Spec.Metrics[0].Resource.Name != corev1.ResourceCPU {
		t.Errorf("HPA metrics = %s, want CPU utilisation", toYAML(hpa.Spec.Metrics))
	}
	if hpa.Spec.MaxReplicas <= deref(hpa.Spec.MinReplicas) {
		t.Errorf("HPA cannot scale: min %d, max %d", deref(hpa.Spec.MinReplicas), hpa.Spec.MaxReplicas)
	}
	d, _ := r.stage(t, "ingester")
	if deref(d.Spec.Replicas) < deref(hpa.Spec.MinReplicas) {
		t.Errorf("ingester replicas %d below the HPA's minimum %d", deref(d.Spec.Replicas), deref(hpa.Spec.MinReplicas))
	}
}

// TestPodDisruptionBudgets: exactly one PDB covers each stage and NATS, and
// it lets a node drain proceed (maxUnavailable 1) without taking a second
// pod of the same workload.
func TestPodDisruptionBudgets(t *testing.T) {
	t.Parallel()
	for _, ov := range overlays {
		r := mustRender(t, ov)
		pdbs := all[*policyv1.PodDisruptionBudget](r)
		for _, w := range r.workloads() {
			if w.Kind == "Job" {
				continue
			}
			var covering []string
			for _, p := range pdbs {
				if selects(p.Spec.Selector, w.Labels) {
					covering = append(covering, p.Name)
					if p.Spec.MaxUnavailable == nil || p.Spec.MaxUnavailable.IntValue() != 1 {
						t.Errorf("%s: PDB %s: maxUnavailable = %v, want 1", ov, p.Name, p.Spec.MaxUnavailable)
					}
				}
			}
			if len(covering) != 1 {
				t.Errorf("%s: %s %s is covered by PDBs %v, want exactly one", ov, w.Kind, w.Name, covering)
			}
		}
	}
}

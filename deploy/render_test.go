package deploy

import (
	"regexp"
	"testing"
)

// TestRenderStrict renders the base and each overlay with kustomize's Go API
// and decodes every object strictly (mustRender fails on an unknown field, an
// unknown kind, or a field the typed struct would drop).
func TestRenderStrict(t *testing.T) {
	t.Parallel()
	want := map[string][]string{
		"base": {"StatefulSet/nats", "Deployment/ingester", "Deployment/transformer", "Deployment/forwarder",
			"Job/zen-streams-apply", "HorizontalPodAutoscaler/ingester", "ScaledObject/transformer", "ScaledObject/forwarder",
			"Ingress/ingester", "Service/ingester", "Service/nats", "Service/nats-headless", "NetworkPolicy/default-deny"},
		"dev": {"StatefulSet/nats", "Deployment/ingester", "Deployment/transformer", "Deployment/forwarder",
			"Job/zen-streams-apply", "Ingress/ingester", "NetworkPolicy/default-deny"},
		"tools": {"Deployment/nats-box"},
		"prod": {"StatefulSet/nats", "Deployment/ingester", "Deployment/transformer", "Deployment/forwarder",
			"Job/zen-streams-apply", "HorizontalPodAutoscaler/ingester", "ScaledObject/transformer", "ScaledObject/forwarder",
			"Ingress/ingester", "PrometheusRule/zen-twilio", "ConfigMap/zen-grafana-dashboard", "NetworkPolicy/default-deny",
			"PodMonitor/zen-ingester", "PodMonitor/zen-transformer", "PodMonitor/zen-forwarder", "PodMonitor/zen-nats"},
	}
	for _, name := range []string{"base", "dev", "prod", "tools"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := mustRender(t, name)
			have := map[string]bool{}
			for _, o := range r.Objects {
				have[o.Kind+"/"+o.Name] = true
				if (name == "dev" || name == "prod") && o.Namespace == "" {
					t.Errorf("%s/%s has no namespace", o.Kind, o.Name)
				}
			}
			for _, w := range want[name] {
				if !have[w] {
					t.Errorf("%s is not rendered", w)
				}
			}
			if name != "tools" && len(r.Objects) < 20 {
				t.Errorf("rendered %d objects, want the whole deployment", len(r.Objects))
			}
		})
	}
}

// TestDevHasNoAutoscalers: development runs one replica of everything, on a
// cluster that need not have KEDA or the Prometheus Operator.
func TestDevHasNoAutoscalers(t *testing.T) {
	t.Parallel()
	r := mustRender(t, "dev")
	for _, o := range r.Objects {
		switch o.Kind {
		case "HorizontalPodAutoscaler", "ScaledObject", "PrometheusRule", "PodMonitor":
			t.Errorf("dev renders %s/%s", o.Kind, o.Name)
		}
	}
}

// TestOtherNamespace: prod deployed in another namespace (its
// kustomization's `namespace:` changed, nothing else) puts every object
// there and names the namespace `zen` nowhere: not in a KEDA endpoint, a
// service address or an object's namespace.
func TestOtherNamespace(t *testing.T) {
	t.Parallel()
	r := mustRender(t, "prod-payments")
	zenNS := regexp.MustCompile(`\.zen(\.svc|:|\b)|namespace: zen\n`)
	for _, o := range r.Objects {
		if o.Namespace != "payments" {
			t.Errorf("%s/%s in namespace %q, want payments", o.Kind, o.Name, o.Namespace)
		}
		if m := zenNS.FindString(toYAML(o.Typed)); m != "" {
			t.Errorf("%s/%s still names the namespace zen (%q)", o.Kind, o.Name, m)
		}
	}
	if len(r.Objects) != len(mustRender(t, "prod").Objects) {
		t.Errorf("prod in payments renders %d objects, prod %d", len(r.Objects), len(mustRender(t, "prod").Objects))
	}
}

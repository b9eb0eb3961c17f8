package deploy

import (
	"net/url"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// outsideSources are the only namespaces a pod other than the ingester may
// take traffic from, and on which ports: Prometheus scrapes the metrics
// ports, KEDA reads NATS's monitoring port.
var outsideSources = map[string][]int32{
	"monitoring": {8081, 8082, 7777},
	"keda":       {8222},
}

// TestNetworkPolicies: a default deny; only the ingester takes traffic from
// outside the namespace (besides the scrapes above); every stage and the Job
// reach NATS's client port; only the forwarder reaches outside the cluster.
func TestNetworkPolicies(t *testing.T) {
	t.Parallel()
	for _, ov := range overlays {
		r := mustRender(t, ov)
		pols := all[*networkingv1.NetworkPolicy](r)
		// The operator's nats-box (deploy/k8s/tools) must reach NATS too.
		box := mustRender(t, "tools").workloads()
		var deny bool
		for _, p := range pols {
			if len(p.Spec.PodSelector.MatchLabels) == 0 && len(p.Spec.PodSelector.MatchExpressions) == 0 &&
				len(p.Spec.Ingress) == 0 && len(p.Spec.Egress) == 0 &&
				hasType(p, networkingv1.PolicyTypeIngress) && hasType(p, networkingv1.PolicyTypeEgress) {
				deny = true
			}
		}
		if !deny {
			t.Errorf("%s: no default-deny NetworkPolicy (empty podSelector, Ingress and Egress, no rules)", ov)
		}
		natsLabels := map[string]string{"app.kubernetes.io/name": "nats"}
		for _, w := range append(r.workloads(), box...) {
			name := w.Labels["app.kubernetes.io/name"]
			for _, p := range pols {
				if !selects(&p.Spec.PodSelector, w.Labels) && !emptySelector(p.Spec.PodSelector) {
					continue
				}
				for _, rule := range p.Spec.Ingress {
					if len(rule.From) == 0 {
						t.Errorf("%s: policy %s lets anyone reach %s", ov, p.Name, name)
					}
					for _, peer := range rule.From {
						if peer.IPBlock != nil {
							t.Errorf("%s: policy %s: %s takes traffic from an IP block", ov, p.Name, name)
							continue
						}
						if peer.NamespaceSelector == nil {
							continue // a pod of this namespace
						}
						ns := peer.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"]
						if name == "ingester" && ns == "ingress-nginx" {
							continue
						}
						allowed, ok := outsideSources[ns]
						if !ok {
							t.Errorf("%s: policy %s: %s takes traffic from namespace %q", ov, p.Name, name, ns)
							continue
						}
						for _, port := range rulePorts(rule.Ports) {
							if !containsPort(allowed, port) && !(name == "ingester" && ns == "monitoring") {
								t.Errorf("%s: policy %s: namespace %s may reach %s on port %d", ov, p.Name, ns, name, port)
							}
						}
					}
				}
				for _, rule := range p.Spec.Egress {
					for _, peer := range rule.To {
						switch {
						case peer.IPBlock != nil:
							if name != "forwarder" {
								t.Errorf("%s: policy %s: %s may reach %s outside the cluster", ov, p.Name, name, peer.IPBlock.CIDR)
							}
							if !contains(peer.IPBlock.Except, "169.254.0.0/16") {
								t.Errorf("%s: policy %s: egress to %s must exclude the link-local range (cloud metadata)", ov, p.Name, peer.IPBlock.CIDR)
							}
						case peer.NamespaceSelector != nil:
							if peer.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != "kube-system" ||
								rulePortsString(rule.Ports) != "53,53" {
								t.Errorf("%s: policy %s: %s may reach namespace %v beyond DNS", ov, p.Name, name, peer.NamespaceSelector.MatchLabels)
							}
						}
					}
				}
			}
			if name == "nats" {
				continue
			}
			if !allowsEgress(pols, w.Labels, natsLabels, 4222) {
				t.Errorf("%s: %s may not reach NATS on 4222 (egress)", ov, name)
			}
			if !allowsIngress(pols, natsLabels, w.Labels, 4222) {
				t.Errorf("%s: NATS does not accept %s on 4222 (ingress)", ov, name)
			}
		}
		if !allowsIngress(pols, natsLabels, natsLabels, 6222) || !allowsEgress(pols, natsLabels, natsLabels, 6222) {
			t.Errorf("%s: NATS servers may not route to each other on 6222", ov)
		}
	}
}

func hasType(p *networkingv1.NetworkPolicy, typ networkingv1.PolicyType) bool {
	for _, x := range p.Spec.PolicyTypes {
		if x == typ {
			return true
		}
	}
	return false
}

func emptySelector(s metav1.LabelSelector) bool {
	return len(s.MatchLabels) == 0 && len(s.MatchExpressions) == 0
}

func rulePorts(ps []networkingv1.NetworkPolicyPort) []int32 {
	var out []int32
	for _, p := range ps {
		if p.Port != nil {
			out = append(out, int32(p.Port.IntValue()))
		}
	}
	return out
}

func rulePortsString(ps []networkingv1.NetworkPolicyPort) string {
	var out []string
	for _, p := range ps {
		if p.Port != nil {
			out = append(out, p.Port.String())
		}
	}
	return strings.Join(out, ",")
}

func containsPort(ps []int32, p int32) bool {
	for _, x := range ps {
		if x == p {
			return true
		}
	}
	return false
}

// allowsEgress: some policy selecting from allows egress to pods labelled to
// (in the namespace) on port.
func allowsEgress(pols []*networkingv1.NetworkPolicy, from, to map[string]string, port int32) bool {
	for _, p := range pols {
		if !selects(&p.Spec.PodSelector, from) {
			continue
		}
		for _, rule := range p.Spec.Egress {
			if !containsPort(rulePorts(rule.Ports), port) {
				continue
			}
			for _, peer := range rule.To {
				if peer.NamespaceSelector == nil && peer.IPBlock == nil && selects(peer.PodSelector, to) {
					return true
				}
			}
		}
	}
	return false
}

// allowsIngress: some policy selecting to allows ingress from pods labelled
// from (in the namespace) on port.
func allowsIngress(pols []*networkingv1.NetworkPolicy, to, from map[string]string, port int32) bool {
	for _, p := range pols {
		if !selects(&p.Spec.PodSelector, to) {
			continue
		}
		for _, rule := range p.Spec.Ingress {
			if !containsPort(rulePorts(rule.Ports), port) {
				continue
			}
			for _, peer := range rule.From {
				if peer.NamespaceSelector == nil && peer.IPBlock == nil && selects(peer.PodSelector, from) {
					return true
				}
			}
		}
	}
	return false
}

// TestIngressMatchesPublicURL: Twilio signs the URL it calls, and the
// ingester checks signatures against PUBLIC_URL + path + query; so the
// Ingress host must be PUBLIC_URL's host, served over TLS, with the webhook
// path passed through to the ingester's LISTEN_ADDR port unchanged.
func TestIngressMatchesPublicURL(t *testing.T) {
	t.Parallel()
	for _, ov := range overlays {
		r := mustRender(t, ov)
		_, c := r.stage(t, "ingester")
		env := r.env(t, c)
		pub, err := url.Parse(env["PUBLIC_URL"].Value)
		if err != nil || pub.Scheme != "https" || pub.Path != "" {
			t.Errorf("%s: PUBLIC_URL = %q, want https://<host> (TLS ends at the ingress)", ov, env["PUBLIC_URL"].Value)
			continue
		}
		ing := one[*networkingv1.Ingress](t, r, "ingester")
		for k := range ing.Annotations {
			if strings.Contains(k, "rewrite-target") || strings.Contains(k, "use-regex") {
				t.Errorf("%s: Ingress annotation %s would change the path Twilio signed", ov, k)
			}
		}
		if len(ing.Spec.Rules) != 1 || ing.Spec.Rules[0].Host != pub.Hostname() {
			t.Errorf("%s: Ingress rules %s, want one rule for host %s (PUBLIC_URL)", ov, toYAML(ing.Spec.Rules), pub.Hostname())
			continue
		}
		if len(ing.Spec.TLS) != 1 || !contains(ing.Spec.TLS[0].Hosts, pub.Hostname()) || ing.Spec.TLS[0].SecretName == "" {
			t.Errorf("%s: Ingress TLS %s must cover %s", ov, toYAML(ing.Spec.TLS), pub.Hostname())
		}
		paths := ing.Spec.Rules[0].HTTP.Paths
		if len(paths) != 1 || paths[0].Path != "/webhooks/twilio" || paths[0].PathType == nil || *paths[0].PathType != networkingv1.PathTypePrefix {
			t.Errorf("%s: Ingress paths %s, want Prefix /webhooks/twilio", ov, toYAML(paths))
			continue
		}
		be := paths[0].Backend.Service
		svc := one[*corev1.Service](t, r, be.Name)
		var target *corev1.ServicePort
		for i, p := range svc.Spec.Ports {
			if (be.Port.Name != "" && p.Name == be.Port.Name) || (be.Port.Number != 0 && p.Port == be.Port.Number) {
				target = &svc.Spec.Ports[i]
			}
		}
		if target == nil {
			t.Errorf("%s: Service %s has no port %+v", ov, be.Name, be.Port)
			continue
		}
		if !selects(&metav1.LabelSelector{MatchLabels: svc.Spec.Selector}, one[*deploymentT](t, r, "ingester").Spec.Template.Labels) {
			t.Errorf("%s: Service %s does not select the ingester pods", ov, svc.Name)
		}
		if got, want := portOf(t, c, target.TargetPort), listenPort(t, env["LISTEN_ADDR"].Value); want != itoa(got) {
			t.Errorf("%s: Service %s sends to port %s, the ingester listens on %s", ov, svc.Name, itoa(got), want)
		}
	}
}

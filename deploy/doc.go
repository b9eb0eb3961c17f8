// Package deploy holds the Kubernetes deployment of zen-twilio (k8s/: a
// kustomize base, overlays/dev and overlays/prod, and the monitoring
// component) and, in its tests, the checks that keep it honest offline:
//
//   - every overlay renders with kustomize's Go API and every object decodes
//     strictly into its Kubernetes API type (unknown fields fail);
//   - workloads are hardened, probed, resourced and drain within their
//     termination grace; secrets are only referenced;
//   - the environment each Deployment sets is exactly what its service reads
//     (the services' own ConfigVars) and forms a valid configuration;
//   - the NATS configuration parses with nats-server's parser, and its users'
//     permissions are proven live against a real nats-server process, with
//     the three services running under their own users end to end.
//
// deploy/helm/zen-twilio is the same deployment as a Helm chart; its tests
// render it with the Helm Go SDK, decode it as strictly and compare it with
// the kustomize prod overlay field by field.
//
// The module is outside go.work: run its tests with
//
//	cd deploy && GOWORK=off go test -race ./...
//
// with a nats-server binary at ../bin/nats-server (`make tools`) or named by
// ZEN_NATS_SERVER.
package deploy

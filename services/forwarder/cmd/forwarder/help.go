package main

// help describes the forwarder's own variables for --help; the shared ones
// are in servicemain.SharedHelp. A target's delivery: block in package.yaml
// overrides the FORWARDER_* defaults.
var help = map[string]string{
	"LISTEN_ADDR":                "address of /healthz, /readyz and /metrics (default :8082)",
	"FORWARDER_CONCURRENCY":      "deliveries in flight per target per replica (default 128)",
	"FORWARDER_ACK_WAIT":         "redelivery of an event whose forwarder died (default 30s)",
	"FORWARDER_MAX_DELIVER":      "attempts before an event is dead-lettered (default 12)",
	"FORWARDER_BACKOFF":          "refused at start: retries follow FORWARDER_RETRY_* or the target's delivery.retry alone",
	"FORWARDER_MAX_ACK_PENDING":  "unacknowledged events outstanding, across replicas (default 1000)",
	"FORWARDER_RETRY_INITIAL":    "first delay after a 5xx, 408, 429 or network error (default 1s)",
	"FORWARDER_RETRY_MAX":        "longest delay of that schedule (default 5m)",
	"FORWARDER_RETRY_MULTIPLIER": "growth of that schedule (default 2)",
	"FORWARDER_HTTP_TIMEOUT":     "one POST, shorter than FORWARDER_ACK_WAIT (default 10s)",
	"FORWARDER_MAX_RETRY_AFTER":  "cap on a target's Retry-After (default 5m)",
}

package main

// help describes the transformer's own variables for --help; the shared
// ones are in servicemain.SharedHelp.
var help = map[string]string{
	"LISTEN_ADDR":                 "address of /healthz, /readyz and /metrics (default :8081)",
	"TRANSFORMER_CONCURRENCY":     "raw messages handled at once per replica (default 32)",
	"TRANSFORMER_BATCH":           "raw messages transformed and published together, at most the concurrency (default 16)",
	"TRANSFORMER_LINGER":          "how long a batch waits for more after its first (default 0)",
	"TRANSFORMER_ACK_WAIT":        "redelivery of a message whose transformer died (default 30s)",
	"TRANSFORMER_MAX_DELIVER":     "deliveries before a message is dead-lettered (default 10)",
	"TRANSFORMER_BACKOFF":         "refused at start: retries follow TRANSFORMER_RETRY_* alone",
	"TRANSFORMER_MAX_ACK_PENDING": "unacknowledged messages outstanding, across replicas (default 1000)",
	"TRANSFORMER_RETRY_INITIAL":   "first delay of the retry schedule of a transient failure (default 1s)",
	"TRANSFORMER_RETRY_MAX":       "longest delay of that schedule (default 1m)",
	"TRANSFORMER_REDACT_KEY":      "HMAC-SHA256 key of the rules' hash redactions, at least 32 bytes (secret; needed only when a rule hashes)",
	"PUBLISH_TIMEOUT":             "the wait for the event publish acknowledgements, shorter than the ack wait (default 5s)",
}

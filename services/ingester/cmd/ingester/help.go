package main

// help describes the ingester's own variables for --help; the shared ones
// are in servicemain.SharedHelp.
var help = map[string]string{
	"LISTEN_ADDR":             "address of the webhooks and of /healthz, /readyz, /metrics (default :8080)",
	"PACKAGE_DIR":             "the transform package: its endpoint responses (TwiML) and known events (default: built-in)",
	"PUBLIC_URL":              "required: the origin Twilio calls, e.g. https://hooks.example.com; signatures are checked against it",
	"TWILIO_AUTH_TOKEN":       "the auth token of one Twilio account (secret); several, comma-separated, during a rotation",
	"TWILIO_AUTH_TOKENS":      "tokens per account, AC…=token[;token2],AC…=token (secret); not with TWILIO_AUTH_TOKEN",
	"TWILIO_AUTH_TOKENS_FILE": "the same from a file, one AC…=token[;token2] a line; read once at start",
	"INSECURE_SKIP_SIGNATURE": "accept unsigned requests: local experiments only (default false)",
	"MAX_BODY_BYTES":          "larger request bodies get 413, an announced one before it is read (default 131072)",
	"MAX_FORM_PARAMS":         "a form or query with more parameters gets 413, counted before parsing (default 256)",
	"BODY_READ_TIMEOUT":       "a body must arrive within this + its size / BODY_MIN_RATE, else 408 (default 2s)",
	"BODY_MIN_RATE":           "bytes per second a body must keep up after BODY_READ_TIMEOUT (default 16384)",
	"BODY_MEMORY_BYTES":       "the bodies held in memory at once, charged as bytes arrive; beyond, 503 (default 16777216)",
	"MAX_CONNECTIONS":         "open connections; more wait to be accepted (default 2048)",
	"PUBLISH_TIMEOUT":         "past it without JetStream's acknowledgement the answer is 503 and Twilio retries (default 5s)",
	"MAX_IN_FLIGHT":           "requests waiting for a publish acknowledgement at once; beyond, 503 (default 128)",
	"RETRY_AFTER":             "the Retry-After of a 503 (default 5s)",
	"READ_HEADER_TIMEOUT":     "slow clients are cut off after this for the headers (default 5s)",
	"READ_TIMEOUT":            "and after this for the whole request (default 15s)",
}

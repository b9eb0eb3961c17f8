package servicemain

// MainVars are the variables [Main] reads itself, besides the service's.
var MainVars = []string{"CPU_PROFILE", "LOG_LEVEL"}

// SharedHelp describes, in one line each, the variables every service
// reads (docs/configuration.md has the whole story). A service's own
// Help wins over these.
var SharedHelp = map[string]string{
	"NATS_URL":          "NATS server URL(s), comma-separated for a cluster (default nats://127.0.0.1:4222)",
	"NATS_CREDS":        "a NATS credentials file",
	"NATS_USER":         "NATS user (with NATS_PASSWORD)",
	"NATS_PASSWORD":     "NATS password (secret; never printed)",
	"NATS_INBOX_PREFIX": "subject prefix of the connection's reply inboxes (default _INBOX_<service>)",
	"STREAMS_APPLY":     "create or update the streams, consumers and KV bucket at start (default true)",
	"LISTEN_ADDR":       "address of /healthz, /readyz and /metrics",
	"PACKAGE_DIR":       "the transform package directory (default packages/transforms/twilio/v1)",
	"SHUTDOWN_GRACE":    "how long SIGTERM waits for in-flight work before NATS is drained (default 20s)",
	"LOG_LEVEL":         "debug, info, warn or error (default info)",
	"CPU_PROFILE":       "write a Go CPU profile to this file until a clean exit (off by default)",

	"STREAM_REPLICAS":            "replicas of every stream and of the KV bucket (default 1; 3 in production)",
	"RAW_MAX_AGE":                "retention of TWILIO_RAW by age (default 168h)",
	"RAW_MAX_BYTES":              "retention of TWILIO_RAW in bytes (default 1.25 GiB)",
	"RAW_DUPLICATE_WINDOW":       "how long a Twilio retry is recognised and stored once (default 10m)",
	"EVENTS_MAX_AGE":             "retention of ZEN_EVENTS by age (default 168h)",
	"EVENTS_MAX_BYTES":           "retention of ZEN_EVENTS in bytes (default 2 GiB)",
	"EVENTS_DUPLICATE_WINDOW":    "Nats-Msg-Id window of ZEN_EVENTS (default 10m)",
	"DLQ_MAX_AGE":                "retention of ZEN_DLQ by age (default unlimited)",
	"DLQ_MAX_BYTES":              "retention of ZEN_DLQ in bytes (default 50 MiB)",
	"ATTEMPTS_MAX_AGE":           "retention of ZEN_ATTEMPTS by age (default 72h)",
	"ATTEMPTS_MAX_BYTES":         "retention of ZEN_ATTEMPTS in bytes (default 320 MiB)",
	"DEDUPE_TTL":                 "how long a delivered key is remembered in zen_dedupe (default 20m)",
	"DEDUPE_LONG_TTL":            "how long a delivered verification.status key is remembered (default 5h)",
	"DEDUPE_MAX_BYTES":           "size cap of the zen_dedupe bucket (default 64 MiB)",
	"CAPACITY_EVENTS_PER_SECOND": "peak rate the stream horizons are checked against at start (default 2; 0: no check)",
	"NATS_MEMORY_LIMIT":          "the nats container's memory limit in bytes, for that check",
	"NATS_MAX_STORE":             "the nats server's max_file_store in bytes, for that check",

	"OTEL_EXPORTER_OTLP_ENDPOINT":        "OTLP/HTTP collector base URL: tracing is off unless this or the next is set",
	"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "OTLP/HTTP URL for traces only (wins over OTEL_EXPORTER_OTLP_ENDPOINT)",
	"OTEL_EXPORTER_OTLP_PROTOCOL":        "http/protobuf (the only one taken)",
	"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf (the only one taken)",
	"OTEL_SDK_DISABLED":                  "true turns tracing off even with an endpoint",
	"OTEL_SERVICE_NAME":                  "service.name of the spans (default zen-<stage>)",
	"OTEL_TRACES_SAMPLER":                "parentbased_always_on (default), always_on, always_off, traceidratio, parentbased_traceidratio, …",
	"OTEL_TRACES_SAMPLER_ARG":            "the ratio of a traceidratio sampler, 0 to 1",
}

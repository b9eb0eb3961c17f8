module github.com/zen-twilio/zen/cmd/zen

go 1.26.0

require (
	github.com/nats-io/nats.go v1.55.0
	github.com/zen-twilio/zen/pkg v0.0.0
)

require (
	github.com/klauspost/compress v1.20.3 // indirect
	github.com/nats-io/nkeys v0.4.16 // indirect
	github.com/nats-io/nuid v1.0.1 // indirect
	golang.org/x/crypto v0.58.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
	gopkg.in/yaml.v3 v3.0.1 // indirect
)

replace (
	github.com/zen-twilio/zen/pkg => ../../pkg
	github.com/zen-twilio/zen/services/forwarder => ../../services/forwarder
	github.com/zen-twilio/zen/services/ingester => ../../services/ingester
	github.com/zen-twilio/zen/services/transformer => ../../services/transformer
)

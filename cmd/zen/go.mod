module github.com/zen-twilio/zen/cmd/zen

go 1.26.0

require (
	github.com/zen-twilio/zen/pkg v0.0.0
	github.com/zen-twilio/zen/services/forwarder v0.0.0
	github.com/zen-twilio/zen/services/ingester v0.0.0
	github.com/zen-twilio/zen/services/transformer v0.0.0
)

replace (
	github.com/zen-twilio/zen/pkg => ../../pkg
	github.com/zen-twilio/zen/services/forwarder => ../../services/forwarder
	github.com/zen-twilio/zen/services/ingester => ../../services/ingester
	github.com/zen-twilio/zen/services/transformer => ../../services/transformer
)

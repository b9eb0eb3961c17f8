module github.com/zen-twilio/zen/services/transformer

go 1.26.0

require github.com/zen-twilio/zen/pkg v0.0.0

replace github.com/zen-twilio/zen/pkg => ../../pkg

//go:build tools

// This file pins the libraries the project chose (README "Libraries") so
// that parallel work on the module does not race on go.mod. It is never built.
package pkg

import (
	_ "github.com/google/go-cmp/cmp"
	_ "github.com/nats-io/nats-server/v2/server"
	_ "github.com/nats-io/nats.go"
	_ "github.com/nats-io/nats.go/jetstream"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/prometheus/client_golang/prometheus/promhttp"
	_ "github.com/prometheus/client_golang/prometheus/testutil"
	_ "github.com/testcontainers/testcontainers-go"
	_ "github.com/testcontainers/testcontainers-go/modules/nats"
	_ "github.com/twilio/twilio-go/client"
	_ "go.uber.org/zap"
	_ "go.uber.org/zap/zaptest"
	_ "gopkg.in/yaml.v3"
)

// Command ingester receives Twilio webhooks and stores them in JetStream.
// Configuration: environment variables (`ingester --help`, and
// docs/configuration.md).
package main

import (
	"context"

	"go.uber.org/zap"

	"github.com/zen-twilio/zen/pkg/buildinfo"
	"github.com/zen-twilio/zen/pkg/servicemain"
	"github.com/zen-twilio/zen/services/ingester"
)

// version is set at build time (-ldflags -X main.version=…).
var version = "dev"

func main() {
	buildinfo.SetVersion(version) // zen_build_info
	servicemain.Main(servicemain.Service[ingester.Config]{
		Name:    "ingester",
		Summary: "ingester receives Twilio webhooks, verifies X-Twilio-Signature and stores each request in the TWILIO_RAW stream before it answers.",
		Version: version,
		Vars:    ingester.ConfigVars(),
		Help:    help,
		Config:  ingester.ConfigFromEnv,
		Run: func(ctx context.Context, cfg ingester.Config, logger *zap.Logger) error {
			svc, err := ingester.New(ctx, cfg, logger)
			if err != nil {
				return err
			}
			return svc.Run(ctx)
		},
	})
}

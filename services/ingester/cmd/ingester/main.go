// Command ingester receives Twilio webhooks and stores them in JetStream.
// Configuration: environment variables (see services/ingester/config.go).
package main

import (
	"context"
	"os"

	"go.uber.org/zap"

	"github.com/zen-twilio/zen/pkg/buildinfo"
	"github.com/zen-twilio/zen/pkg/servicemain"
	"github.com/zen-twilio/zen/services/ingester"
)

// version is set at build time (-ldflags -X main.version=…).
var version = "dev"

func main() {
	buildinfo.SetVersion(version) // zen_build_info
	servicemain.Run("ingester", func(ctx context.Context, logger *zap.Logger) error {
		cfg, err := ingester.ConfigFromEnv(os.LookupEnv)
		if err != nil {
			return err
		}
		svc, err := ingester.New(ctx, cfg, logger)
		if err != nil {
			return err
		}
		return svc.Run(ctx)
	})
}

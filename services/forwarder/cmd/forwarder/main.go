// Command forwarder delivers Zen events to the warehouse.
// Configuration: environment variables (see services/forwarder/config.go).
package main

import (
	"context"
	"os"

	"go.uber.org/zap"

	"github.com/zen-twilio/zen/pkg/buildinfo"
	"github.com/zen-twilio/zen/pkg/servicemain"
	"github.com/zen-twilio/zen/services/forwarder"
)

// version is set at build time (-ldflags -X main.version=…).
var version = "dev"

func main() {
	buildinfo.SetVersion(version) // zen_build_info
	servicemain.Run("forwarder", func(ctx context.Context, logger *zap.Logger) error {
		cfg, err := forwarder.ConfigFromEnv(os.LookupEnv)
		if err != nil {
			return err
		}
		cfg.Version = version
		svc, err := forwarder.New(ctx, cfg, logger)
		if err != nil {
			return err
		}
		return svc.Run(ctx)
	})
}

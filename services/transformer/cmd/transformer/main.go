// Command transformer turns raw Twilio requests into Zen events.
// Configuration: environment variables (see services/transformer/config.go).
package main

import (
	"context"
	"os"

	"go.uber.org/zap"

	"github.com/zen-twilio/zen/pkg/buildinfo"
	"github.com/zen-twilio/zen/pkg/servicemain"
	"github.com/zen-twilio/zen/services/transformer"
)

// version is set at build time (-ldflags -X main.version=…).
var version = "dev"

func main() {
	buildinfo.SetVersion(version) // zen_build_info
	servicemain.Run("transformer", func(ctx context.Context, logger *zap.Logger) error {
		cfg, err := transformer.ConfigFromEnv(os.LookupEnv)
		if err != nil {
			return err
		}
		svc, err := transformer.New(ctx, cfg, logger)
		if err != nil {
			return err
		}
		return svc.Run(ctx)
	})
}

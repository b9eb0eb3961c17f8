// Command transformer turns raw Twilio requests into Zen events.
// Configuration: environment variables (`transformer --help`, and
// docs/configuration.md).
package main

import (
	"context"

	"go.uber.org/zap"

	"github.com/zen-twilio/zen/pkg/buildinfo"
	"github.com/zen-twilio/zen/pkg/servicemain"
	"github.com/zen-twilio/zen/services/transformer"
)

// version is set at build time (-ldflags -X main.version=…).
var version = "dev"

func main() {
	buildinfo.SetVersion(version) // zen_build_info
	servicemain.Main(servicemain.Service[transformer.Config]{
		Name:    "transformer",
		Summary: "transformer turns the raw Twilio requests of TWILIO_RAW into Zen events on ZEN_EVENTS, by the rules of the transform package.",
		Version: version,
		Vars:    transformer.ConfigVars(),
		Help:    help,
		Config:  transformer.ConfigFromEnv,
		Run: func(ctx context.Context, cfg transformer.Config, logger *zap.Logger) error {
			svc, err := transformer.New(ctx, cfg, logger)
			if err != nil {
				return err
			}
			return svc.Run(ctx)
		},
	})
}

// Command forwarder delivers Zen events to the warehouse.
// Configuration: environment variables (`forwarder --help`, and
// docs/configuration.md).
package main

import (
	"context"

	"go.uber.org/zap"

	"github.com/zen-twilio/zen/pkg/buildinfo"
	"github.com/zen-twilio/zen/pkg/servicemain"
	"github.com/zen-twilio/zen/services/forwarder"
)

// version is set at build time (-ldflags -X main.version=…).
var version = "dev"

func main() {
	buildinfo.SetVersion(version) // zen_build_info
	servicemain.Main(servicemain.Service[forwarder.Config]{
		Name:    "forwarder",
		Summary: "forwarder delivers the Zen events of ZEN_EVENTS to the targets of the transform package (the warehouse), once per event.",
		Version: version,
		Vars:    forwarder.ConfigVars(),
		Help:    help,
		Note:    "The transform package's {{NAME}} placeholders are read from the environment too:\nCOMMS_WAREHOUSE_URL (an absolute http(s) URL), COMMS_WAREHOUSE_TOKEN, and any other the package names.",
		Config:  forwarder.ConfigFromEnv,
		Run: func(ctx context.Context, cfg forwarder.Config, logger *zap.Logger) error {
			cfg.Version = version
			svc, err := forwarder.New(ctx, cfg, logger)
			if err != nil {
				return err
			}
			return svc.Run(ctx)
		},
	})
}

// Command ingester receives Twilio webhooks and stores them in JetStream.
// Configuration: environment variables (see services/ingester/config.go).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"go.uber.org/zap"

	"github.com/zen-twilio/zen/pkg/envconf"
	"github.com/zen-twilio/zen/pkg/gctune"
	"github.com/zen-twilio/zen/pkg/logging"
	"github.com/zen-twilio/zen/services/ingester"
)

func main() {
	gctune.Apply()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	logger, err := logging.New(envconf.New(nil).String("LOG_LEVEL", "info"), false)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	defer func() {
		if r := recover(); r != nil {
			logger.Fatal("panic", zap.Any("panic", r), zap.Stack("stack"))
		}
	}()
	if err := realMain(ctx, logger); err != nil {
		_ = logger.Sync()
		logger.Fatal("ingester failed", zap.Error(err))
	}
	_ = logger.Sync()
}

func realMain(ctx context.Context, logger *zap.Logger) error {
	cfg, err := ingester.ConfigFromEnv(os.LookupEnv)
	if err != nil {
		return err
	}
	svc, err := ingester.New(ctx, cfg, logger)
	if err != nil {
		return err
	}
	return svc.Run(ctx)
}

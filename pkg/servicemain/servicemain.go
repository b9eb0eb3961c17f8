// Package servicemain is the main function the three services share:
// GC defaults, SIGINT/SIGTERM as context cancellation, the zap logger from
// LOG_LEVEL, a logged panic, and a non-zero exit when the service fails.
package servicemain

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"go.uber.org/zap"

	"github.com/zen-twilio/zen/pkg/envconf"
	"github.com/zen-twilio/zen/pkg/gctune"
	"github.com/zen-twilio/zen/pkg/logging"
)

// Run runs service name until run returns; SIGINT or SIGTERM cancels its
// context. It does not return when run fails.
func Run(name string, run func(ctx context.Context, logger *zap.Logger) error) {
	if err := gctune.Apply(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	logger, err := logging.New(envconf.New(nil).String("LOG_LEVEL", "info"), false)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if path := envconf.New(nil).String("CPU_PROFILE", ""); path != "" {
		stopProfile, err := startCPUProfile(path)
		if err != nil {
			logger.Fatal("CPU_PROFILE", zap.Error(err))
		}
		defer stopProfile()
	}
	defer func() {
		if r := recover(); r != nil {
			logger.Fatal("panic", zap.Any("panic", r), zap.Stack("stack"))
		}
	}()
	if err := run(ctx, logger); err != nil {
		_ = logger.Sync()
		logger.Fatal(name+" failed", zap.Error(err))
	}
	_ = logger.Sync()
}

// startCPUProfile writes a Go CPU profile to path until the returned
// function is called (at exit, after a clean shutdown).
func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); _ = f.Close() }, nil
}

// Package logging is the one zap factory of the project and its redaction
// helpers (STYLE R11). Services log JSON; `zen dev` logs to the console.
// Never log a secret, a message body or a full phone number: use Phone for
// numbers and keep bodies out of log fields entirely.
package logging

import (
	"fmt"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// New returns a logger at level ("debug", "info", "warn", "error"; empty
// means info). dev selects the human-readable console encoder.
func New(level string, dev bool) (*zap.Logger, error) {
	lvl := zapcore.InfoLevel
	if level != "" {
		if err := lvl.UnmarshalText([]byte(strings.ToLower(level))); err != nil {
			return nil, fmt.Errorf("env var `LOG_LEVEL` must be debug, info, warn or error, got %q", level)
		}
	}
	var cfg zap.Config
	if dev {
		cfg = zap.NewDevelopmentConfig()
		cfg.DisableStacktrace = true
	} else {
		cfg = zap.NewProductionConfig()
		cfg.EncoderConfig.TimeKey = "ts"
		cfg.EncoderConfig.EncodeTime = zapcore.RFC3339NanoTimeEncoder
	}
	cfg.Level = zap.NewAtomicLevelAt(lvl)
	return cfg.Build()
}

// Phone masks a phone number to its last four digits: "+15017122661" →
// "+*******2661". Strings of four characters or fewer are fully masked;
// non-phone addresses ("client:alice", "whatsapp:+1…") keep their scheme.
func Phone(s string) string {
	scheme := ""
	if i := strings.LastIndexByte(s, ':'); i >= 0 {
		scheme, s = s[:i+1], s[i+1:]
	}
	if len(s) <= 4 {
		return scheme + strings.Repeat("*", len(s))
	}
	prefix := ""
	if s[0] == '+' {
		prefix, s = "+", s[1:]
	}
	return scheme + prefix + strings.Repeat("*", len(s)-4) + s[len(s)-4:]
}

// PhoneField is a zap field holding a masked phone number.
func PhoneField(key, number string) zap.Field { return zap.String(key, Phone(number)) }

package transform_test

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zen-twilio/zen/pkg/envconf"
	"github.com/zen-twilio/zen/pkg/fixture"
	"github.com/zen-twilio/zen/pkg/pack"
	"github.com/zen-twilio/zen/pkg/transform"
)

var update = flag.Bool("update", false, "rewrite goldens/twilio from fixtures/twilio (never the fixtures)")

// cardTime is the package card's golden timestamp.
var cardTime = time.Date(2026, 6, 24, 10, 0, 0, 0, time.UTC)

func repoRoot(tb testing.TB) string {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.work")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			tb.Fatal("no go.work above " + dir)
		}
	}
}

// testEnv supplies the package's {{...}} variables with obviously fake values.
var testEnv = envconf.MapLookup(map[string]string{
	"COMMS_WAREHOUSE_URL":   "http://127.0.0.1:9/events",
	"COMMS_WAREHOUSE_TOKEN": "test-token-not-a-secret",
})

func mustEngine(tb testing.TB) *transform.Engine {
	tb.Helper()
	p, err := pack.Load(filepath.Join(repoRoot(tb), "packages", "transforms", "twilio", "v1"), testEnv)
	if err != nil {
		tb.Fatalf("load package: %v", err)
	}
	e, err := transform.New(p, transform.WithClock(func() time.Time { return cardTime }))
	if err != nil {
		tb.Fatal(err)
	}
	return e
}

func TestGolden(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	e := mustEngine(t)
	fixtures, err := fixture.List(filepath.Join(root, "fixtures", "twilio"))
	if err != nil || len(fixtures) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, fx := range fixtures {
		name := strings.TrimSuffix(filepath.Base(fx), ".json")
		golden := filepath.Join(root, "goldens", "twilio", name+".golden.json")
		t.Run(name, func(t *testing.T) {
			if *update {
				results, err := transform.Run(e, fx, cardTime)
				if err != nil {
					t.Fatal(err)
				}
				out, err := transform.Render(results)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, out, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := transform.CheckGolden(e, fx, golden, cardTime); err != nil {
				t.Errorf("%v\n(run `make goldens` if the change is intended)", err)
			}
		})
	}
}

// TestGoldenDetectsAChange breaks a golden on purpose: the check must fail
// with a diff naming the field.
func TestGoldenDetectsAChange(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	e := mustEngine(t)
	want, err := os.ReadFile(filepath.Join(root, "goldens", "twilio", "incoming_sms.golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	broken := filepath.Join(t.TempDir(), "incoming_sms.golden.json")
	if err := os.WriteFile(broken, bytes.Replace(want, []byte("Hello from Twilio!"), []byte("Hello from Twilio?"), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	err = transform.CheckGolden(e, filepath.Join(root, "fixtures", "twilio", "incoming_sms.json"), broken, cardTime)
	var mm *transform.GoldenMismatch
	if !errors.As(err, &mm) {
		t.Fatalf("CheckGolden on a broken golden = %v, want a GoldenMismatch", err)
	}
	if !strings.Contains(err.Error(), ".payload.message_body") {
		t.Errorf("diff does not name the field:\n%v", err)
	}
}

// TestCanonicalIsIdempotent: canonicalising a canonical golden changes nothing.
func TestCanonicalIsIdempotent(t *testing.T) {
	t.Parallel()
	goldens, _ := filepath.Glob(filepath.Join(repoRoot(t), "goldens", "twilio", "*.golden.json"))
	if len(goldens) < 6 {
		t.Fatalf("found %d goldens, want at least one per event type (6)", len(goldens))
	}
	for _, g := range goldens {
		b, err := os.ReadFile(g)
		if err != nil {
			t.Fatal(err)
		}
		once, err := transform.Canonical(b)
		if err != nil {
			t.Fatalf("%s: %v", g, err)
		}
		twice, err := transform.Canonical(once)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(once, twice) {
			t.Errorf("%s: canonical form is not stable:\n%s\n%s", g, once, twice)
		}
	}
}

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zen-twilio/zen/services/forwarder"
	"github.com/zen-twilio/zen/services/ingester"
	"github.com/zen-twilio/zen/services/transformer"
)

// docs/configuration.md names every variable the services read.
func TestConfigurationDocListsEveryVariable(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(testRoot(t), "docs", "configuration.md"))
	if err != nil {
		t.Fatal(err)
	}
	for svc, vars := range map[string][]string{
		"ingester": ingester.ConfigVars(), "transformer": transformer.ConfigVars(), "forwarder": forwarder.ConfigVars(),
	} {
		if len(vars) < 10 {
			t.Fatalf("%s reads only %d variables: ConfigVars is broken", svc, len(vars))
		}
		for _, v := range vars {
			if !strings.Contains(string(doc), "`"+v+"`") {
				t.Errorf("docs/configuration.md does not document %s (read by the %s)", v, svc)
			}
		}
	}
}

package e2e

import (
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/zen-twilio/zen/pkg/natstest"
)

// StageEnv is the environment of each stage on top of the common one.
type StageEnv struct {
	Common, Ingester, Transformer, Forwarder map[string]string
}

// Pipeline is the three stages as OS processes, n replicas of each.
type Pipeline struct {
	Ingesters, Transformers, Forwarders []*Proc
	// Bases are the ingesters' public URLs.
	Bases []string
	// LogDir holds every process's log file.
	LogDir string
}

// All returns every process of the pipeline.
func (p *Pipeline) All() []*Proc {
	return append(append(append([]*Proc{}, p.Ingesters...), p.Transformers...), p.Forwarders...)
}

// StartPipeline builds the binaries, starts n replicas of each stage with
// env, waits until every /readyz answers 200, and stops them at cleanup
// (printing their logs when the test failed).
func StartPipeline(t *testing.T, n int, env StageEnv) *Pipeline {
	t.Helper()
	bins, logDir := Binaries(t), t.TempDir()
	merge := func(extra map[string]string, own map[string]string) map[string]string {
		out := map[string]string{}
		for _, m := range []map[string]string{env.Common, extra, own} {
			for k, v := range m {
				out[k] = v
			}
		}
		return out
	}
	p := &Pipeline{LogDir: logDir}
	var ready []string
	proc := func(stage string, i int, extra map[string]string) *Proc {
		addr := freeAddr(t)
		own := map[string]string{"LISTEN_ADDR": addr}
		if stage == "ingester" {
			own["PUBLIC_URL"] = "http://" + addr
			p.Bases = append(p.Bases, "http://"+addr)
		}
		ready = append(ready, "http://"+addr+"/readyz")
		return NewProc(fmt.Sprintf("%s-%d", stage, i), filepath.Join(bins, stage), logDir, merge(extra, own))
	}
	for i := range n {
		p.Ingesters = append(p.Ingesters, proc("ingester", i, env.Ingester))
		p.Transformers = append(p.Transformers, proc("transformer", i, env.Transformer))
		p.Forwarders = append(p.Forwarders, proc("forwarder", i, env.Forwarder))
	}
	for _, pr := range p.All() {
		pr.Start(t)
	}
	t.Cleanup(func() {
		for _, pr := range p.All() {
			pr.Term(10 * time.Second)
		}
		if t.Failed() {
			for _, pr := range p.All() {
				t.Logf("---- %s (%s)\n%s", pr.Name, pr.LogPath(), pr.Tail(3000))
			}
		}
	})
	natstest.CheckFor(t, 60*time.Second, func() error {
		for _, u := range ready {
			resp, err := http.Get(u)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				return fmt.Errorf("%s: %d", u, resp.StatusCode)
			}
		}
		return nil
	})
	return p
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

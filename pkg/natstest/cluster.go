package natstest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Cluster is a JetStream cluster of nats-server processes on loopback, for
// failover tests: nodes can be stopped and restarted one at a time.
type Cluster struct {
	// URLs are the client URLs of the nodes, in order.
	URLs []string

	bin   string
	dir   string
	mu    sync.Mutex
	nodes []*clusterNode
}

type clusterNode struct {
	name, conf string
	cmd        *exec.Cmd
	done       chan struct{}
}

// RunCluster starts n nats-server processes (ServerBinary) forming one
// JetStream cluster named "zen", and stops them at cleanup.
func RunCluster(tb testing.TB, n int) *Cluster {
	tb.Helper()
	bin, err := ServerBinary()
	if err != nil {
		tb.Fatalf("cluster needs a nats-server binary (run `make tools` or set NATS_SERVER_BIN): %v", err)
	}
	c := &Cluster{bin: bin, dir: tb.TempDir()}
	clientPorts := make([]int, n)
	routePorts := make([]int, n)
	for i := range n {
		clientPorts[i], routePorts[i] = freePort(tb), freePort(tb)
	}
	routes := make([]string, n)
	for i, p := range routePorts {
		routes[i] = fmt.Sprintf("nats-route://127.0.0.1:%d", p)
	}
	for i := range n {
		name := fmt.Sprintf("n%d", i+1)
		conf := filepath.Join(c.dir, name+".conf")
		body := fmt.Sprintf(`server_name: %s
listen: 127.0.0.1:%d
jetstream { store_dir: %q }
cluster {
  name: zen
  listen: 127.0.0.1:%d
  routes: [%s]
}
`, name, clientPorts[i], filepath.Join(c.dir, name), routePorts[i], strings.Join(routes, ", "))
		if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
			tb.Fatal(err)
		}
		c.nodes = append(c.nodes, &clusterNode{name: name, conf: conf})
		c.URLs = append(c.URLs, fmt.Sprintf("nats://127.0.0.1:%d", clientPorts[i]))
	}
	for i := range n {
		c.Start(tb, i)
	}
	tb.Cleanup(c.Shutdown)
	c.WaitReady(tb, 60*time.Second)
	return c
}

// URL returns all nodes' URLs joined by commas, as NATS_URL takes them.
func (c *Cluster) URL() string { return strings.Join(c.URLs, ",") }

// Start (re)starts node i.
func (c *Cluster) Start(tb testing.TB, i int) {
	tb.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	node := c.nodes[i]
	if node.cmd != nil {
		return
	}
	cmd := exec.Command(c.bin, "-c", node.conf)
	logf, err := os.OpenFile(filepath.Join(c.dir, node.name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		tb.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start %s: %v", node.name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	node.cmd, node.done = cmd, done
}

// Stop terminates node i (SIGTERM, then SIGKILL after 10 s) and waits.
func (c *Cluster) Stop(i int) {
	c.mu.Lock()
	node := c.nodes[i]
	cmd, done := node.cmd, node.done
	node.cmd = nil
	c.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGCONT) // a paused node cannot stop
	_ = cmd.Process.Signal(os.Interrupt)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// Pause freezes node i (SIGSTOP): its connections stay open but it answers
// nothing, like a server stalled on a slow disk. Resume undoes it.
func (c *Cluster) Pause(i int) { c.signal(i, syscall.SIGSTOP) }

// Resume continues a paused node (SIGCONT).
func (c *Cluster) Resume(i int) { c.signal(i, syscall.SIGCONT) }

func (c *Cluster) signal(i int, sig os.Signal) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cmd := c.nodes[i].cmd; cmd != nil {
		_ = cmd.Process.Signal(sig)
	}
}

// Shutdown stops every node.
func (c *Cluster) Shutdown() {
	for i := range c.nodes {
		c.Stop(i)
	}
}

// Index returns the index of the node with the given server name, or -1.
func (c *Cluster) Index(serverName string) int {
	for i, n := range c.nodes {
		if n.name == serverName {
			return i
		}
	}
	return -1
}

// WaitReady waits until JetStream answers on every running node and the
// cluster has a meta leader.
func (c *Cluster) WaitReady(tb testing.TB, timeout time.Duration) {
	tb.Helper()
	CheckFor(tb, timeout, func() error {
		c.mu.Lock()
		var urls []string
		for i, n := range c.nodes {
			if n.cmd != nil {
				urls = append(urls, c.URLs[i])
			}
		}
		c.mu.Unlock()
		for _, u := range urls {
			if err := jsReady(u); err != nil {
				return fmt.Errorf("%s: %w", u, err)
			}
		}
		return nil
	})
}

func jsReady(url string) error {
	nc, err := nats.Connect(url, nats.Timeout(time.Second))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err = js.AccountInfo(ctx)
	return err
}

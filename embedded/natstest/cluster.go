package natstest

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ionix/ionixsnow/embedded"
)

// FreeAddrs returns n distinct free host:port addresses on 127.0.0.1. All n listeners
// are open at once, so no address is handed out twice; they are closed before
// returning, for a server to take them (and take them again after a restart).
func FreeAddrs(tb testing.TB, n int) []string {
	tb.Helper()
	ls := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	addrs := make([]string, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatalf("free loopback port: %v", err)
		}
		ls = append(ls, l)
		addrs = append(addrs, l.Addr().String())
	}
	return addrs
}

// Node is a JetStream server a test can stop and start again: it comes back with the
// same server name, client and route ports and store directory.
type Node struct {
	opts embedded.Options

	mu  sync.Mutex
	srv *embedded.Server
}

// StartNode starts a server that can be restarted. An empty or port-0 Listen is
// replaced by a fixed free loopback port and an empty StoreDir by a temporary
// directory, so that a restart finds both again. The server is stopped when the test
// ends.
func StartNode(tb testing.TB, o embedded.Options) *Node {
	tb.Helper()
	n := newNode(tb, o)
	n.Start(tb)
	return n
}

func newNode(tb testing.TB, o embedded.Options) *Node {
	tb.Helper()
	if o.Listen == "" || strings.HasSuffix(o.Listen, ":0") {
		o.Listen = FreeAddrs(tb, 1)[0]
	}
	if o.StoreDir == "" {
		o.StoreDir = tb.TempDir()
	}
	n := &Node{opts: o}
	tb.Cleanup(n.Stop)
	return n
}

// Name is the server name given in the options.
func (n *Node) Name() string { return n.opts.ServerName }

// Listen is the fixed client address, host:port.
func (n *Node) Listen() string { return n.opts.Listen }

// URL is the client URL; it stays the same across restarts.
func (n *Node) URL() string { return "nats://" + n.opts.Listen }

// StoreDir is the JetStream store directory.
func (n *Node) StoreDir() string { return n.opts.StoreDir }

// Server is the running server, nil while the node is stopped.
func (n *Node) Server() *embedded.Server {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.srv
}

// Running reports whether the node's server runs.
func (n *Node) Running() bool { return n.Server() != nil }

// Start starts the node's server; it fails the test if it does not come up. Starting
// a running node does nothing.
func (n *Node) Start(tb testing.TB) {
	tb.Helper()
	if err := n.start(); err != nil {
		tb.Fatal(err)
	}
}

func (n *Node) start() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.srv != nil {
		return nil
	}
	var err error
	// The port was free a moment ago (or this node held it before a restart); a
	// socket still closing can make the listener fail briefly, so try for a while.
	deadline := time.Now().Add(5 * time.Second)
	for {
		var srv *embedded.Server
		srv, err = embedded.Start(n.opts)
		if err == nil {
			n.srv = srv
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("node %q on %s: %w", n.opts.ServerName, n.opts.Listen, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop shuts the node's server down (its leaders hand over first) and waits until it
// is gone. Stopping a stopped node does nothing.
func (n *Node) Stop() {
	n.mu.Lock()
	srv := n.srv
	n.srv = nil
	n.mu.Unlock()
	if srv != nil {
		srv.Stop()
	}
}

// Restart stops the node and starts it again on the same ports and store.
func (n *Node) Restart(tb testing.TB) {
	tb.Helper()
	n.Stop()
	n.Start(tb)
}

// Cluster is a JetStream cluster of nodes in this process, on loopback.
type Cluster struct {
	Name  string
	Nodes []*Node
}

// StartCluster starts an n-node JetStream cluster in process: servers "n1".."nN" on
// free loopback client and route ports, each with its own temporary store, every node
// routed to every other. It returns once a JetStream meta leader is elected and every
// node is current. The nodes are stopped when the test ends.
func StartCluster(tb testing.TB, n int) *Cluster {
	tb.Helper()
	addrs := FreeAddrs(tb, 2*n)
	clients, routes := addrs[:n], addrs[n:]
	c := &Cluster{Name: "ionixsnow-test"}
	for i := range n {
		c.Nodes = append(c.Nodes, newNode(tb, embedded.Options{
			ServerName: fmt.Sprintf("n%d", i+1),
			Listen:     clients[i],
			StoreDir:   tb.TempDir(),
			Cluster: &embedded.ClusterOptions{
				Name:   c.Name,
				Listen: routes[i],
				Routes: routes,
			},
		}))
	}
	// Start the nodes together: each one's routes retry until the others listen.
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, node := range c.Nodes {
		wg.Go(func() { errs[i] = node.start() })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			tb.Fatal(err)
		}
	}
	c.WaitReady(tb, 30*time.Second)
	return c
}

// URLs is every node's client URL, comma-separated, as nats.Connect takes them.
func (c *Cluster) URLs() string {
	urls := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		urls[i] = n.URL()
	}
	return strings.Join(urls, ",")
}

// Node returns the node with the given server name, or nil.
func (c *Cluster) Node(name string) *Node {
	for _, n := range c.Nodes {
		if n.Name() == name {
			return n
		}
	}
	return nil
}

// WaitReady waits until every running node has a route to every other running one, one of them is the
// JetStream meta leader, every running node is current with it, and the leader has heard every running
// node's statistics (until then it counts the node offline and refuses to place replicas on it: "no
// suitable peers for placement, peer offline").
func (c *Cluster) WaitReady(tb testing.TB, timeout time.Duration) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var up []*embedded.Server
		for _, n := range c.Nodes {
			if srv := n.Server(); srv != nil {
				up = append(up, srv)
			}
		}
		leaders, current, routed, placeable := 0, 0, 0, 0
		for _, srv := range up {
			if srv.JetStreamIsLeader() {
				leaders++
				placeable = len(srv.JetStreamClusterPeers())
			}
			if srv.JetStreamIsCurrent() {
				current++
			}
			if srv.NumRemotes() >= len(up)-1 {
				routed++
			}
		}
		running := len(up)
		if leaders == 1 && current == running && routed == running && placeable >= running {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("cluster not ready after %s: %d running, %d meta leaders, %d current, %d routed, %d placeable", timeout, running, leaders, current, routed, placeable)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

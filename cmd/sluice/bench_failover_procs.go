package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/sluice-io/sluice/internal/loopback"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// processCluster runs each node as a 'sluice serve' child process of this
// binary, so that a kill is a real SIGKILL: nothing of the node (not its
// NATS server's Raft leaderships either) gets to say goodbye.
type processCluster struct {
	nodes []*procNode
}

// procNode is one child process and what it needs to start again.
type procNode struct {
	id    int32
	args  []string
	kafka string // listen address, fixed across restarts
	// logFile, if set, receives the node's log (appended across restarts).
	logFile string

	cmd    *exec.Cmd
	nats   string // NATS client URL from the ready line; new at every start
	exited chan struct{}
	mu     sync.Mutex
	tail   []string // last log lines, for errors
}

func startProcessCluster(ctx context.Context, n int, dir, flush string, sessionTimeout time.Duration, logDir string) (*processCluster, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	ports, err := loopback.FreePorts(2 * n)
	if err != nil {
		return nil, err
	}
	routes := make([]string, n)
	for i := range n {
		routes[i] = "127.0.0.1:" + strconv.Itoa(ports[n+i])
	}
	pc := &processCluster{}
	for i := range n {
		var peers []string
		for j, r := range routes {
			if j != i {
				peers = append(peers, r)
			}
		}
		kafka := "127.0.0.1:" + strconv.Itoa(ports[i])
		node := &procNode{id: int32(i), kafka: kafka, args: []string{exe, "serve",
			"--log-format", "json", "--log-level", "info",
			"--data-dir", filepath.Join(dir, "node-"+strconv.Itoa(i)),
			"--node-id", strconv.Itoa(i),
			"--listen", kafka, "--metrics-listen", "",
			"--flush", flush,
			"--cluster-listen", routes[i], "--peers", strings.Join(peers, ","),
			"--session-timeout", sessionTimeout.String(),
		}}
		if logDir != "" {
			node.logFile = filepath.Join(logDir, "node-"+strconv.Itoa(i)+".log")
		}
		pc.nodes = append(pc.nodes, node)
	}
	// A clustered node is ready only once a quorum runs, so all start
	// before any is waited for.
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, node := range pc.nodes {
		wg.Go(func() { errs[i] = node.start(ctx) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		pc.close()
		return nil, err
	}
	return pc, nil
}

// start runs the process and waits for its "sluice ready" line.
func (n *procNode) start(ctx context.Context) error {
	cmd := exec.Command(n.args[0], n.args[1:]...)
	// The nodes' settings are all flags: SLUICE_* variables of the
	// caller's shell must not change them.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, envPrefix+"_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	var logTo *os.File
	if n.logFile != "" {
		if logTo, err = os.OpenFile(n.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err != nil {
			return err
		}
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	n.cmd, n.exited = cmd, make(chan struct{})
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if logTo != nil {
				fmt.Fprintln(logTo, line)
			}
			n.mu.Lock()
			n.tail = append(n.tail, line)
			if len(n.tail) > 20 {
				n.tail = n.tail[1:]
			}
			n.mu.Unlock()
			var rec struct {
				Msg  string `json:"msg"`
				NATS string `json:"nats"`
			}
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "sluice ready" {
				ready <- rec.NATS
			}
		}
		cmd.Wait()
		if logTo != nil {
			logTo.Close()
		}
		close(n.exited)
	}()
	timer := time.NewTimer(time.Minute)
	defer timer.Stop()
	select {
	case n.nats = <-ready:
		return nil
	case <-n.exited:
		return fmt.Errorf("node %d exited before it was ready:\n%s", n.id, n.log())
	case <-timer.C:
	case <-ctx.Done():
	}
	n.signal(syscall.SIGKILL)
	return fmt.Errorf("node %d not ready after 1m:\n%s", n.id, n.log())
}

func (n *procNode) log() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return strings.Join(n.tail, "\n")
}

func (n *procNode) signal(sig syscall.Signal) {
	if n.cmd != nil && n.cmd.Process != nil {
		n.cmd.Process.Signal(sig)
	}
}

func (pc *processCluster) addrs() []string {
	out := make([]string, len(pc.nodes))
	for i, n := range pc.nodes {
		out[i] = n.kafka
	}
	return out
}

func (pc *processCluster) natsURL(id int32) string { return pc.nodes[id].nats }

func (pc *processCluster) kill(id int32) error {
	n := pc.nodes[id]
	n.signal(syscall.SIGKILL)
	select {
	case <-n.exited:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("node %d still running 10s after SIGKILL", id)
	}
}

func (pc *processCluster) restart(ctx context.Context, id int32) error {
	return pc.nodes[id].start(ctx)
}

// close stops the nodes with SIGTERM, concurrently (one by one, the last
// would wait out their goodbyes without a quorum), and kills those that
// do not stop within 30s.
func (pc *processCluster) close() {
	var wg sync.WaitGroup
	for _, n := range pc.nodes {
		if n.cmd == nil {
			continue
		}
		wg.Go(func() {
			n.signal(syscall.SIGTERM)
			select {
			case <-n.exited:
			case <-time.After(30 * time.Second):
				n.signal(syscall.SIGKILL)
				<-n.exited
			}
		})
	}
	wg.Wait()
}

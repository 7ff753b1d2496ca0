// Package testnode runs real `sluice serve` processes for end-to-end tests:
// it builds the binary once per test binary, starts nodes on free loopback
// ports, and stops them gracefully or with SIGKILL.
package testnode

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binDirPrefix names the temporary directories the binaries are built in.
const binDirPrefix = "sluice-bin-"

// Binary builds ./cmd/sluice once per test process and returns its path.
// A test binary has no hook at its exit that could remove the build, so
// each build instead removes those left by test processes that started
// long before it (and so have ended: a test run has a 20-minute timeout).
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		removeOldBuilds(2 * time.Hour)
		dir, err := os.MkdirTemp("", binDirPrefix)
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "sluice")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/sluice")
		cmd.Dir = moduleRoot()
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/sluice: %v\n%s", err, out.String())
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// removeOldBuilds deletes build directories older than age.
func removeOldBuilds(age time.Duration) {
	old, _ := filepath.Glob(filepath.Join(os.TempDir(), binDirPrefix+"*"))
	for _, dir := range old {
		if fi, err := os.Stat(dir); err == nil && fi.IsDir() && time.Since(fi.ModTime()) > age {
			os.RemoveAll(dir)
		}
	}
}

func moduleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// FreePort returns a loopback address with a port that was free a moment ago.
func FreePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Node is one running `sluice serve` process.
type Node struct {
	Addr    string // Kafka listener
	Admin   string // HTTP listener: /metrics and the job admin API
	DataDir string
	Args    []string

	t      testing.TB
	cmd    *exec.Cmd
	logs   *SyncBuffer
	exited chan struct{}
	err    error
}

// Start runs `sluice serve` on dataDir with a fresh Kafka port and waits
// until it accepts connections. extra flags are appended. The node is
// killed at test cleanup if still running.
func Start(t testing.TB, dataDir string, extra ...string) *Node {
	t.Helper()
	n := &Node{DataDir: dataDir, t: t}
	n.Args = append([]string{"serve", "--data-dir", dataDir, "--listen", FreePort(t), "--metrics-listen", FreePort(t)}, extra...)
	n.Addr, n.Admin = n.Args[4], n.Args[6]
	n.start()
	t.Cleanup(func() {
		if n.Running() {
			n.Kill()
		}
		if t.Failed() {
			t.Logf("node %s log:\n%s", n.Addr, n.Logs())
		}
	})
	return n
}

// Restart starts the node again with the same arguments and address.
func (n *Node) Restart() {
	n.t.Helper()
	n.start()
}

func (n *Node) start() {
	n.t.Helper()
	n.launch()
	n.waitReady()
}

// launch starts the process without waiting for it.
func (n *Node) launch() {
	n.t.Helper()
	n.logs = &SyncBuffer{}
	n.cmd = exec.Command(Binary(n.t), n.Args...)
	n.cmd.Stdout, n.cmd.Stderr = n.logs, n.logs
	n.exited = make(chan struct{})
	if err := n.cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	go func() {
		n.err = n.cmd.Wait()
		close(n.exited)
	}()
}

// waitReady waits until the process says it is ready and listens on both
// its ports.
func (n *Node) waitReady() {
	n.t.Helper()
	// The HTTP listener opens after the job manager has reloaded the
	// node's jobs, so once both ports answer the node is fully up. The
	// ports alone do not prove it: FreePort's port may have been taken by
	// another test process meanwhile, which would answer for a node still
	// waiting to join its cluster. So the node's own "sluice ready" line
	// must be there too.
	deadline := time.Now().Add(30 * time.Second)
	for _, addr := range []string{"", n.Addr, n.Admin} {
		for {
			if addr == "" {
				if strings.Contains(n.Logs(), `msg="sluice ready"`) {
					break
				}
			} else if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
				c.Close()
				break
			}
			select {
			case <-n.exited:
				n.t.Fatalf("sluice serve exited before listening: %v\n%s", n.err, n.Logs())
			case <-time.After(20 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				n.t.Fatalf("sluice serve was not ready (%q) within 30s\n%s", addr, n.Logs())
			}
		}
	}
}

// StartCluster runs n `sluice serve` processes that form one cluster
// (node ids 1..n, data in baseDir/node-<id>, fresh Kafka, metrics and
// cluster ports) and waits until all of them are up. They start together
// because a clustered node waits for a quorum before it listens. extra
// flags go to every node.
func StartCluster(t testing.TB, baseDir string, n int, extra ...string) []*Node {
	t.Helper()
	routes := make([]string, n)
	for i := range routes {
		routes[i] = FreePort(t)
	}
	nodes := make([]*Node, n)
	for i := range nodes {
		var peers []string
		for j, r := range routes {
			if j != i {
				peers = append(peers, r)
			}
		}
		dir := filepath.Join(baseDir, fmt.Sprintf("node-%d", i+1))
		node := &Node{DataDir: dir, t: t}
		node.Args = append([]string{"serve", "--data-dir", dir, "--listen", FreePort(t), "--metrics-listen", FreePort(t),
			"--node-id", strconv.Itoa(i + 1), "--cluster-listen", routes[i], "--peers", strings.Join(peers, ",")}, extra...)
		node.Addr, node.Admin = node.Args[4], node.Args[6]
		nodes[i] = node
		t.Cleanup(func() {
			if node.cmd != nil && node.Running() {
				node.Kill()
			}
			if t.Failed() {
				t.Logf("node %s log:\n%s", node.Addr, node.Logs())
			}
		})
	}
	for _, node := range nodes {
		node.launch()
	}
	for _, node := range nodes {
		node.waitReady()
	}
	return nodes
}

// Launch starts a stopped node again without waiting for it to listen
// (a cluster node that has lost its quorum does not).
func (n *Node) Launch() {
	n.t.Helper()
	n.launch()
}

// WaitReady waits until a launched node listens.
func (n *Node) WaitReady() {
	n.t.Helper()
	n.waitReady()
}

// Running reports whether the process is still alive.
func (n *Node) Running() bool {
	select {
	case <-n.exited:
		return false
	default:
		return true
	}
}

// PID is the process id of the node's current process (0 if none).
func (n *Node) PID() int {
	if n.cmd == nil || n.cmd.Process == nil {
		return 0
	}
	return n.cmd.Process.Pid
}

// Kill sends SIGKILL and waits for the process to die.
func (n *Node) Kill() {
	n.cmd.Process.Signal(syscall.SIGKILL)
	<-n.exited
}

// Pause freezes the process (SIGSTOP), as a network cut would look to its
// peers: its connections stay open but nothing moves on them.
func (n *Node) Pause() { n.cmd.Process.Signal(syscall.SIGSTOP) }

// Resume thaws a paused process (SIGCONT).
func (n *Node) Resume() { n.cmd.Process.Signal(syscall.SIGCONT) }

// Stop sends SIGTERM and returns the exit error (nil for exit status 0).
func (n *Node) Stop() error {
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.exited:
		return n.err
	case <-time.After(30 * time.Second):
		n.Kill()
		return fmt.Errorf("sluice serve did not exit within 30s of SIGTERM")
	}
}

// Logs returns what the process printed so far.
func (n *Node) Logs() string { return n.logs.String() }

// Run executes a sluice client command against this node and returns its
// combined output.
func (n *Node) Run(stdin string, args ...string) (string, error) {
	cmd := exec.Command(Binary(n.t), append(args, "--brokers", n.Addr)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// RunAdmin executes a sluice command that talks to the node's admin API
// (sluice job ...) and returns its combined output.
func (n *Node) RunAdmin(stdin string, args ...string) (string, error) {
	cmd := exec.Command(Binary(n.t), append(args, "--admin", n.Admin)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// SyncBuffer is a bytes.Buffer that a process (or logger) may write while a
// test reads it.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// sluiceBin is the binary under test, built once by TestMain: serve,
// signals and exit statuses are only honest in a real process.
var sluiceBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sluice-test-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	sluiceBin = filepath.Join(dir, "sluice")
	build := exec.Command("go", "build", "-o", sluiceBin, ".")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building sluice:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// cleanEnv is the environment for child processes without SLUICE_*
// variables from the developer's shell, which would change what is tested.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, envPrefix+"_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// node is a running `sluice serve`.
type node struct {
	t        *testing.T
	cmd      *exec.Cmd
	addr     string // Kafka listener
	metrics  string
	ready    map[string]any // the ready log line
	mu       sync.Mutex
	stderr   bytes.Buffer
	exited   chan struct{}
	exitErr  error
	dataDir  string
	stopOnce sync.Once
}

const startTimeout = 30 * time.Second

// startNode runs `sluice serve` on random loopback ports and waits until
// it has logged that it is ready and its port accepts connections.
func startNode(t *testing.T, dataDir string, args ...string) *node {
	t.Helper()
	return startNodeEnv(t, dataDir, nil, args...)
}

func startNodeEnv(t *testing.T, dataDir string, env []string, args ...string) *node {
	t.Helper()
	base := []string{"serve", "--log-format", "json", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"}
	if dataDir != "" {
		base = append(base, "--data-dir", dataDir)
	}
	n := &node{t: t, dataDir: dataDir, exited: make(chan struct{})}
	n.cmd = exec.Command(sluiceBin, append(base, args...)...)
	n.cmd.Env = cleanEnv(env...)
	stderr, err := n.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	readyc := make(chan map[string]any, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Bytes()
			n.mu.Lock()
			n.stderr.Write(line)
			n.stderr.WriteByte('\n')
			n.mu.Unlock()
			var rec map[string]any
			if json.Unmarshal(line, &rec) == nil && rec["msg"] == "sluice ready" {
				readyc <- rec
			}
		}
		n.exitErr = n.cmd.Wait()
		close(n.exited)
	}()
	t.Cleanup(func() { n.stop() })
	select {
	case rec := <-readyc:
		n.ready = rec
		n.addr, _ = rec["listen"].(string)
		n.metrics, _ = rec["metrics"].(string)
	case <-n.exited:
		t.Fatalf("sluice serve exited before it was ready: %v\n%s", n.exitErr, n.log())
	case <-time.After(startTimeout):
		t.Fatalf("sluice serve not ready after %s:\n%s", startTimeout, n.log())
	}
	waitPort(t, n.addr)
	return n
}

func (n *node) log() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.stderr.String()
}

// terminate sends SIGTERM and returns the exit error once serve is gone.
func (n *node) terminate() error {
	n.t.Helper()
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.exited:
		return n.exitErr
	case <-time.After(startTimeout):
		n.cmd.Process.Kill()
		<-n.exited
		n.t.Fatalf("sluice serve did not exit within %s of SIGTERM:\n%s", startTimeout, n.log())
		return nil
	}
}

func (n *node) stop() {
	n.stopOnce.Do(func() {
		select {
		case <-n.exited:
		default:
			n.terminate()
		}
	})
}

// waitPort polls until addr accepts a TCP connection.
func waitPort(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(startTimeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not accepting connections after %s: %v", addr, startTimeout, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// result is what a finished CLI invocation produced.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// sluice runs the binary to completion with stdin and a bounded time.
func sluice(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	return sluiceEnv(t, nil, stdin, args...)
}

func sluiceEnv(t *testing.T, env []string, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, sluiceBin, args...)
	cmd.Env = cleanEnv(env...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("running sluice %v: %v", args, err)
	}
	return r
}

// ok runs the binary and fails the test unless it exits 0.
func (n *node) ok(stdin string, args ...string) string {
	n.t.Helper()
	r := sluice(n.t, stdin, append(args, "--brokers", n.addr)...)
	if r.code != 0 {
		n.t.Fatalf("sluice %s: %s", strings.Join(args, " "), r)
	}
	return r.stdout
}

// fails runs the binary against the node and expects a non-zero exit.
func (n *node) fails(stdin string, args ...string) result {
	n.t.Helper()
	r := sluice(n.t, stdin, append(args, "--brokers", n.addr)...)
	if r.code == 0 {
		n.t.Fatalf("sluice %s succeeded, want failure: %s", strings.Join(args, " "), r)
	}
	return r
}

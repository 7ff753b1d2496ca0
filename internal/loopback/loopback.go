// Package loopback hands out free 127.0.0.1 ports for servers that must
// know their ports before they start (a cluster's route addresses, which
// every node lists up front).
package loopback

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
)

// FreePorts reserves n loopback ports by listening on :0 and closing; the
// caller retries if one is taken before use.
func FreePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// StartAttempts is how many times Start tries.
const StartAttempts = 3

// Start runs start up to StartAttempts times, each in its own directory
// dir/attempt-<i>, until it succeeds or ctx ends: a port FreePorts
// reserved can be taken by another process before the server binds it,
// and new ports on a fresh directory are the cure. The error joins every
// attempt's.
func Start[T any](ctx context.Context, dir string, start func(dir string) (T, error)) (T, error) {
	var errs []error
	for attempt := range StartAttempts {
		v, err := start(filepath.Join(dir, "attempt-"+strconv.Itoa(attempt)))
		if err == nil {
			return v, nil
		}
		errs = append(errs, fmt.Errorf("attempt %d: %w", attempt+1, err))
		if ctx.Err() != nil {
			break
		}
	}
	var zero T
	return zero, errors.Join(errs...)
}

// Package loopback hands out free 127.0.0.1 ports for servers that must
// know their ports before they start (a cluster's route addresses, which
// every node lists up front).
package loopback

import "net"

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

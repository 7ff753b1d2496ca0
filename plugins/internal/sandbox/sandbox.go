// Package sandbox holds what every runtime gives a guest in place of the
// real world — deterministic clocks, a seeded random source — and the
// capture of its stderr that lets a fault quote the guest's last words.
// The runtimes share it so that one module sees the same clock readings
// and random bytes, and dies with the same message, on each of them.
package sandbox

import (
	"bytes"
	"encoding/binary"
	"io"
	"math/rand/v2"
)

// FakeEpoch is where every instance's wall clock starts:
// 2024-01-01T00:00:00Z, in nanoseconds since the Unix epoch.
const FakeEpoch = int64(1704067200) * 1e9

// ClockStep is how far the fake clocks advance per reading (1 ms), as in
// wazero's own fake clocks: time moves, so guests that measure durations
// or wait for deadlines make progress, but only as a function of what the
// guest did, never of the host's real time. It is also the clocks'
// reported resolution.
const ClockStep = int64(1e6)

// Clocks are one instance's deterministic clocks.
type Clocks struct {
	wall, mono int64
}

// NewClocks returns clocks whose first wall reading is FakeEpoch and
// whose first monotonic reading is 0.
func NewClocks() *Clocks { return &Clocks{wall: FakeEpoch - ClockStep, mono: -ClockStep} }

// WalltimeNanos advances the wall clock and reads it, in nanoseconds
// since the Unix epoch.
func (c *Clocks) WalltimeNanos() int64 {
	c.wall += ClockStep
	return c.wall
}

// Walltime is WalltimeNanos split into seconds and nanoseconds.
func (c *Clocks) Walltime() (sec int64, nsec int32) {
	ns := c.WalltimeNanos()
	return ns / 1e9, int32(ns % 1e9)
}

// Nanotime advances the monotonic clock and reads it.
func (c *Clocks) Nanotime() int64 {
	c.mono += ClockStep
	return c.mono
}

// SeededRand is an instance's random_get source: ChaCha8 keyed by the
// task's seed, so a replayed task sees the same bytes.
func SeededRand(seed uint64) io.Reader {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	copy(key[8:], "sluice random_get")
	return rand.NewChaCha8(key)
}

// Stderr forwards a guest's stderr to W (nil discards it) and keeps what
// the guest wrote since the current call began (the first 4 KiB of it), so
// that a fault's detail can quote the guest's dying words ("panic: ...",
// "fatal error: ..."), which the Go runtime prints before a long goroutine
// dump.
type Stderr struct {
	W    io.Writer
	head []byte
}

const stderrKept = 4 << 10

// StartCall forgets what earlier calls wrote.
func (s *Stderr) StartCall() { s.head = s.head[:0] }

func (s *Stderr) Write(p []byte) (int, error) {
	if room := stderrKept - len(s.head); room > 0 {
		s.head = append(s.head, p[:min(room, len(p))]...)
	}
	if s.W == nil {
		return len(p), nil
	}
	return s.W.Write(p)
}

// DeathLine returns the first "panic: ..." or "fatal error: ..." line the
// guest wrote during the current call, or "".
func (s *Stderr) DeathLine() string {
	first := -1
	for _, marker := range []string{"panic: ", "fatal error: "} {
		if i := bytes.Index(s.head, []byte(marker)); i >= 0 && (first < 0 || i < first) {
			first = i
		}
	}
	if first < 0 {
		return ""
	}
	line := s.head[first:]
	if nl := bytes.IndexByte(line, '\n'); nl >= 0 {
		line = line[:nl]
	}
	return string(bytes.TrimSpace(line))
}

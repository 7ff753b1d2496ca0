// Package jsretry retries JetStream requests through the moments when a
// cluster cannot answer them: while a meta or stream leader is being
// elected, or while the servers of a new cluster are still meeting. Both
// the cluster's control plane (broker/cluster) and the benchmark's embedded
// JetStream (internal/bench) need the same rule.
package jsretry

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A JetStream request can go unanswered while a stream or meta leader is
// being elected (just after a bucket is created, for one). The first
// attempt's timeout is short so that startup does not sit out a lost
// request; later ones grow to AttemptTimeout, as waiting longer than an
// election lasts gains nothing.
const (
	FirstAttemptTimeout = 750 * time.Millisecond
	AttemptTimeout      = 3 * time.Second
)

// codeNoSuitablePeers is JetStream's "no suitable peers for placement"
// (10005): a replicated stream was asked for before enough servers had
// joined the cluster.
const codeNoSuitablePeers jetstream.ErrorCode = 10005

// Transient reports JetStream errors that mean "ask again later": the meta
// or stream leader is being elected, the request was lost on the way, or
// the cluster's servers have not all joined yet.
func Transient(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, jetstream.ErrJetStreamNotEnabled) ||
		errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.Code == 503 || apiErr.ErrorCode == codeNoSuitablePeers)
}

// Do runs op with a per-attempt timeout and backs off on transient errors
// until ctx ends.
func Do(ctx context.Context, op func(ctx context.Context) error) error {
	return DoWithin(ctx, FirstAttemptTimeout, AttemptTimeout, op)
}

// DoWithin is Do with attempts that start at first and double up to most.
// A request that races a stream's leader election is lost, not delayed,
// so an attempt that waits longer than an election only adds its wait:
// a caller that is in a hurry right after a server died uses short ones.
func DoWithin(ctx context.Context, first, most time.Duration, op func(ctx context.Context) error) error {
	backoff, timeout := 20*time.Millisecond, first
	for {
		actx, cancel := context.WithTimeout(ctx, timeout)
		timeout = min(2*timeout, most)
		err := op(actx)
		cancel()
		if err == nil || !Transient(err) {
			return err
		}
		if ctx.Err() != nil {
			return errors.Join(ctx.Err(), err)
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return errors.Join(ctx.Err(), err)
		case <-t.C:
		}
		backoff = min(2*backoff, time.Second)
	}
}

// PollUntil checks cond with a short backoff until it holds or ctx ends.
// It is for conditions that offer no notification, such as an embedded
// server's JetStream state.
func PollUntil(ctx context.Context, cond func() bool) error {
	backoff := 5 * time.Millisecond
	for !cond() {
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		backoff = min(2*backoff, 100*time.Millisecond)
	}
	return nil
}

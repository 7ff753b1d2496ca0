package cluster

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
// request; later ones grow to attemptTimeout, as waiting longer than an
// election lasts gains nothing.
const (
	firstAttemptTimeout = 750 * time.Millisecond
	attemptTimeout      = 3 * time.Second
)

// isTransient reports JetStream errors that mean "ask again later": the meta
// or stream leader is being elected, or the request was lost on the way.
func isTransient(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, jetstream.ErrJetStreamNotEnabled) ||
		errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.Code == 503
}

// retryTransient runs op with a per-attempt timeout and backs off on
// transient errors until ctx ends.
func retryTransient(ctx context.Context, op func(ctx context.Context) error) error {
	backoff, timeout := 20*time.Millisecond, firstAttemptTimeout
	for {
		actx, cancel := context.WithTimeout(ctx, timeout)
		timeout = min(2*timeout, attemptTimeout)
		err := op(actx)
		cancel()
		if err == nil || !isTransient(err) {
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

// pollUntil checks cond with a short backoff until it holds or ctx ends.
// It is for conditions that offer no notification, such as the embedded
// server's JetStream state.
func pollUntil(ctx context.Context, cond func() bool) error {
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

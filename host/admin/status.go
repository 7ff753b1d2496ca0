package admin

import (
	"context"
	"errors"
	"net/http"

	"github.com/sluice-io/sluice/host"
	"github.com/sluice-io/sluice/plugins"
)

// statusOf maps a job manager error to an HTTP status: the caller's
// mistakes (a bad spec, a module that fails validation or init, a missing
// input topic) are 400, a missing job or version 404, a closing node 503,
// anything else 500.
func statusOf(err error) int {
	var (
		ve *plugins.ValidationError
		ie *plugins.InitError
	)
	switch {
	case errors.Is(err, host.ErrNoSuchJob), errors.Is(err, host.ErrNoSuchVersion):
		return http.StatusNotFound
	case errors.Is(err, host.ErrInvalidJob), errors.As(err, &ve), errors.As(err, &ie):
		return http.StatusBadRequest
	case errors.Is(err, host.ErrClosed), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

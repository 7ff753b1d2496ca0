package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/sluice-io/sluice/host"
)

// NewHandler serves the admin API for jobs. Mount it at the root of a mux
// (it only answers paths under /v1/jobs). log receives 500s; nil logs
// nothing.
func NewHandler(jobs Jobs, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &handler{jobs: jobs, log: log.With("component", "admin")}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/jobs", h.deploy)
	mux.HandleFunc("GET /v1/jobs", h.list)
	mux.HandleFunc("GET /v1/jobs/{name}", h.status)
	mux.HandleFunc("POST /v1/jobs/{name}/stop", h.stop)
	mux.HandleFunc("POST /v1/jobs/{name}/start", h.start)
	return mux
}

// Routes are the patterns NewHandler answers, for mounting it on a mux
// that serves other paths too.
var Routes = []string{"/v1/jobs", "/v1/jobs/"}

type handler struct {
	jobs Jobs
	log  *slog.Logger
}

func (h *handler) deploy(w http.ResponseWriter, r *http.Request) {
	var req DeployRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxRequestBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			h.fail(w, http.StatusRequestEntityTooLarge, fmt.Errorf("request larger than %d bytes", tooBig.Limit))
			return
		}
		h.fail(w, http.StatusBadRequest, fmt.Errorf("request body: %v", err))
		return
	}
	if len(req.Module) == 0 {
		h.fail(w, http.StatusBadRequest, errors.New("request has no module bytes"))
		return
	}
	st, err := h.jobs.Deploy(r.Context(), req.Spec, req.Module)
	if err != nil {
		h.fail(w, statusOf(err), err)
		return
	}
	h.reply(w, http.StatusOK, st)
}

func (h *handler) list(w http.ResponseWriter, _ *http.Request) {
	jobs := h.jobs.List()
	if jobs == nil {
		jobs = []host.JobStatus{} // [] rather than null: clients iterate it
	}
	h.reply(w, http.StatusOK, jobs)
}

func (h *handler) status(w http.ResponseWriter, r *http.Request) {
	st, err := h.jobs.Status(r.PathValue("name"))
	if err != nil {
		h.fail(w, statusOf(err), err)
		return
	}
	h.reply(w, http.StatusOK, st)
}

func (h *handler) stop(w http.ResponseWriter, r *http.Request) {
	h.change(w, r, h.jobs.Stop)
}

func (h *handler) start(w http.ResponseWriter, r *http.Request) {
	h.change(w, r, h.jobs.Start)
}

// change runs a stop or start and answers with the job's status after it.
func (h *handler) change(w http.ResponseWriter, r *http.Request, op func(ctx context.Context, name string) error) {
	name := r.PathValue("name")
	if err := op(r.Context(), name); err != nil {
		h.fail(w, statusOf(err), err)
		return
	}
	st, err := h.jobs.Status(name)
	if err != nil {
		h.fail(w, statusOf(err), err)
		return
	}
	h.reply(w, http.StatusOK, st)
}

func (h *handler) reply(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		h.log.Warn("writing response", "err", err)
	}
}

func (h *handler) fail(w http.ResponseWriter, code int, err error) {
	if code >= 500 {
		h.log.Error("admin request failed", "err", err)
	}
	h.reply(w, code, errorBody{Error: err.Error()})
}

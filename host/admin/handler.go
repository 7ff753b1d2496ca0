package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"unicode"

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
	mux.HandleFunc("DELETE /v1/jobs/{name}", h.delete)
	mux.HandleFunc("GET /v1/jobs/{name}/history", h.history)
	mux.HandleFunc("POST /v1/jobs/{name}/rollback", h.rollback)
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
	by, err := checkBy(req.By)
	if err != nil {
		h.fail(w, http.StatusBadRequest, err)
		return
	}
	st, err := h.jobs.DeployBy(r.Context(), req.Spec, req.Module, by)
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

func (h *handler) history(w http.ResponseWriter, r *http.Request) {
	versions, err := h.jobs.History(r.PathValue("name"))
	if err != nil {
		h.fail(w, statusOf(err), err)
		return
	}
	if versions == nil {
		versions = []host.JobVersion{} // [] rather than null, as for list
	}
	h.reply(w, http.StatusOK, versions)
}

// maxRollbackBytes bounds a rollback body, which is two small fields.
const maxRollbackBytes = 64 << 10

func (h *handler) rollback(w http.ResponseWriter, r *http.Request) {
	var req RollbackRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRollbackBytes))
	dec.DisallowUnknownFields()
	// No body at all is the default rollback, so that
	// `curl -X POST .../rollback` undoes the last deploy.
	if err := dec.Decode(&req); err != nil && !errors.Is(err, io.EOF) {
		h.fail(w, http.StatusBadRequest, fmt.Errorf("request body: %v", err))
		return
	}
	if req.Version < 0 {
		h.fail(w, http.StatusBadRequest, fmt.Errorf("request body: version %d: want a version number, or 0 for the previous good version", req.Version))
		return
	}
	by, err := checkBy(req.By)
	if err != nil {
		h.fail(w, http.StatusBadRequest, err)
		return
	}
	st, err := h.jobs.Rollback(r.Context(), r.PathValue("name"), req.Version, by)
	if err != nil {
		h.fail(w, statusOf(err), err)
		return
	}
	h.reply(w, http.StatusOK, st)
}

func (h *handler) delete(w http.ResponseWriter, r *http.Request) {
	if err := h.jobs.Delete(r.Context(), r.PathValue("name")); err != nil {
		h.fail(w, statusOf(err), err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// checkBy defaults a request's origin to DefaultBy and refuses one that
// would garble the history table: too long, or with control characters
// such as newlines.
func checkBy(by string) (string, error) {
	if by == "" {
		return DefaultBy, nil
	}
	if len(by) > maxByLen {
		return "", fmt.Errorf("request body: \"by\" is %d bytes; at most %d", len(by), maxByLen)
	}
	if strings.IndexFunc(by, unicode.IsControl) >= 0 {
		return "", fmt.Errorf("request body: \"by\" %q has control characters", by)
	}
	return by, nil
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

// Package admin is the node's HTTP API for managing processing jobs: the
// server side (Handler, mounted on the node's HTTP listener next to
// /metrics) and the client that `sluice job` uses.
//
// The API is small and JSON over HTTP, so that curl is a usable client:
//
//	POST   /v1/jobs                  {"spec": JobSpec, "module": base64, "by": "cli"} -> JobStatus
//	GET    /v1/jobs                  -> [JobStatus]
//	GET    /v1/jobs/{name}           -> JobStatus
//	DELETE /v1/jobs/{name}           -> 204, no body
//	GET    /v1/jobs/{name}/history   -> [JobVersion], oldest first
//	POST   /v1/jobs/{name}/rollback  {"version": N, "by": "cli"} -> JobStatus
//	POST   /v1/jobs/{name}/stop      -> JobStatus
//	POST   /v1/jobs/{name}/start     -> JobStatus
//
// Errors are {"error": "..."} with 400 (a bad spec, module or request
// body), 404 (no such job or version) or 500. The message is the job
// manager's own, so the CLI can show it verbatim.
//
// "by" says where a deployment came from and is recorded in the job's
// history, so that `sluice job history` can tell a deploy from the CLI from
// one by a script calling the API; it defaults to "api".
//
// Why the module travels inside the request rather than as a path: the node
// and the CLI need not share a file system, and a path would let anyone who
// reaches the API make the node read arbitrary files.
//
// The API has no authentication yet: whoever reaches it can run code (a
// sandboxed Wasm module, but with the node's CPU and topics) on the node.
// That is why the node's HTTP listener defaults to loopback; put it on
// another interface only on a trusted network.
package admin

import (
	"context"

	"github.com/sluice-io/sluice/host"
)

// Jobs is what the API serves: the node's job manager (*host.Manager
// satisfies it).
type Jobs interface {
	DeployBy(ctx context.Context, spec host.JobSpec, module []byte, by string) (host.JobStatus, error)
	Stop(ctx context.Context, name string) error
	Start(ctx context.Context, name string) error
	List() []host.JobStatus
	Status(name string) (host.JobStatus, error)
	History(name string) ([]host.JobVersion, error)
	Rollback(ctx context.Context, name string, version int, by string) (host.JobStatus, error)
	Delete(ctx context.Context, name string) error
}

// DeployRequest is the body of POST /v1/jobs. Module is the .wasm file's
// bytes (base64 in JSON); Spec.Module, a path on the client's machine, is
// informational only. By is recorded in the job's history (default
// DefaultBy).
type DeployRequest struct {
	Spec   host.JobSpec `json:"spec"`
	Module []byte       `json:"module"`
	By     string       `json:"by,omitempty"`
}

// RollbackRequest is the body of POST /v1/jobs/{name}/rollback; an empty
// body is the zero request. Version 0 asks for the newest version before
// the active one that did not fail, which is what "undo the last deploy"
// means; the node decides which that is, since it holds the history.
type RollbackRequest struct {
	Version int    `json:"version,omitempty"`
	By      string `json:"by,omitempty"`
}

// DefaultBy is the origin recorded for a request that does not name one:
// whatever called the API without saying, which is not the CLI (the CLI
// says "cli").
const DefaultBy = "api"

// maxByLen bounds "by": it is shown in one column of `sluice job history`
// and kept for every version, so it is a short label, not a message.
const maxByLen = 200

// errorBody is the body of every error response.
type errorBody struct {
	Error string `json:"error"`
}

// MaxRequestBytes bounds a request body: a module of up to about 48 MiB
// after base64. Go operators are a few MiB.
const MaxRequestBytes = 64 << 20

// Package admin is the node's HTTP API for managing processing jobs: the
// server side (Handler, mounted on the node's HTTP listener next to
// /metrics) and the client that `sluice job` uses.
//
// The API is small and JSON over HTTP, so that curl is a usable client:
//
//	POST /v1/jobs               {"spec": JobSpec, "module": base64} -> JobStatus
//	GET  /v1/jobs               -> [JobStatus]
//	GET  /v1/jobs/{name}        -> JobStatus
//	POST /v1/jobs/{name}/stop   -> JobStatus
//	POST /v1/jobs/{name}/start  -> JobStatus
//
// Errors are {"error": "..."} with 400 (a bad spec or module), 404 (no such
// job) or 500. The message is the job manager's own, so the CLI can show it
// verbatim.
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
	Deploy(ctx context.Context, spec host.JobSpec, module []byte) (host.JobStatus, error)
	Stop(ctx context.Context, name string) error
	Start(ctx context.Context, name string) error
	List() []host.JobStatus
	Status(name string) (host.JobStatus, error)
}

// DeployRequest is the body of POST /v1/jobs. Module is the .wasm file's
// bytes (base64 in JSON); Spec.Module, a path on the client's machine, is
// informational only.
type DeployRequest struct {
	Spec   host.JobSpec `json:"spec"`
	Module []byte       `json:"module"`
}

// errorBody is the body of every error response.
type errorBody struct {
	Error string `json:"error"`
}

// MaxRequestBytes bounds a request body: a module of up to about 48 MiB
// after base64. Go operators are a few MiB.
const MaxRequestBytes = 64 << 20

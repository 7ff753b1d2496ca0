package host

import (
	"errors"
	"time"
)

// ErrNoSuchVersion is returned by Rollback for a version the job's history
// does not have (or whose module is no longer kept).
var ErrNoSuchVersion = errors.New("no such job version")

// JobVersion is one deployment of a job, as `sluice job history` shows it.
// Versions count from 1 per job name; a failed deployment gets a version
// too, so that the history says what was tried and why it did not run.
type JobVersion struct {
	Version    int            `json:"version"`
	ModuleSHA  string         `json:"module_sha256,omitempty"`
	Parameters map[string]any `json:"parameters,omitempty"`
	At         time.Time      `json:"at"`
	// By says where the deployment came from: "cli", "api", "file PATH",
	// "rollback to N".
	By string `json:"by"`
	// Result is VersionActive, VersionReplaced or VersionFailed.
	Result string `json:"result"`
	// Error is why a failed version did not run.
	Error string `json:"error,omitempty"`
	// SwapPause is the longest pause of a task while it changed to this
	// version in place (zero for a version that started the job).
	SwapPause time.Duration `json:"swap_pause,omitempty"`
}

// Version results.
const (
	VersionActive   = "active"
	VersionReplaced = "replaced"
	VersionFailed   = "failed"
)

package host

// This file is the contract between host and its callers (cmd/sluice, the
// admin API, tests). Implementation lives in the other files.

import (
	"time"
)

// ErrorPolicy says what happens to a record the operator fails
// (set_error + StatusRecordFailed).
type ErrorPolicy string

const (
	// PolicyFail fails the task; it restarts from its checkpoint with
	// backoff, and fails again on the same record until the job changes.
	PolicyFail ErrorPolicy = "fail"
	// PolicySkip drops the record (logged and counted) and goes on.
	PolicySkip ErrorPolicy = "skip"
	// PolicyDeadLetter appends the record, unchanged, to the job's dead
	// letter topic with the error in the "sluice.error" header (and the
	// source in "sluice.topic", "sluice.partition", "sluice.offset"), then
	// goes on.
	PolicyDeadLetter ErrorPolicy = "dead-letter"
)

// JobSpec is a parsed, validated job file. Field names match the YAML keys
// (see LoadJobFile and the README's job file reference).
type JobSpec struct {
	Name string `json:"name"`
	// Module is the path of the .wasm file; relative paths in a job file
	// are relative to the file's directory. Exactly one of Module and
	// Source is set in a file; after resolution (cmd side) Module is set.
	Module string `json:"module,omitempty"`
	// Source is an operator source directory that `sluice build` compiles.
	Source  string       `json:"source,omitempty"`
	Runtime string       `json:"runtime"` // "wazero" (default)
	Inputs  []string     `json:"inputs"`
	Outputs []OutputSpec `json:"outputs"`
	Stores  []StoreSpec  `json:"stores,omitempty"`
	// Tables are compacted topics, co-partitioned with the inputs, that
	// each task keeps partition by partition in a read-only local store
	// (see TableSpec).
	Tables []TableSpec `json:"tables,omitempty"`
	// MaxInputWait bounds how long a task with several inputs (tables
	// included) waits for an input that has no records before it goes on
	// without it (default DefaultMaxInputWait). Records are otherwise
	// handled in timestamp order across inputs; see the README.
	MaxInputWait time.Duration `json:"max-input-wait,omitempty"`
	// Parameters are passed to the operator's init as a JSON object.
	Parameters map[string]any `json:"parameters,omitempty"`
	Limits     LimitsSpec     `json:"limits"`
	OnError    ErrorPolicy    `json:"on-error"`
	// DeadLetterTopic is used with PolicyDeadLetter; default "<name>-dlq".
	DeadLetterTopic string `json:"dead-letter-topic,omitempty"`
	// CommitInterval is how often tasks checkpoint (default 1s).
	CommitInterval time.Duration `json:"commit-interval"`
}

// OutputSpec is one output topic. Partitions (0: the inputs' count) and
// Config apply only when deploy creates the topic.
type OutputSpec struct {
	Topic      string            `json:"topic"`
	Partitions int32             `json:"partitions,omitempty"`
	Config     map[string]string `json:"config,omitempty"`
}

// StoreSpec is one named state store. Changelog defaults to
// "<job>-<store>-changelog" (compacted, one partition per task).
type StoreSpec struct {
	Name      string `json:"name"`
	Changelog string `json:"changelog"`
}

// TableSpec is one table: partition k of Topic is kept in task k's
// store Name, which the operator reads with the state host functions and
// cannot write. The host applies the topic's records to it (a null value
// deletes the key) in timestamp order with the stream inputs.
type TableSpec struct {
	Name  string `json:"name"`
	Topic string `json:"topic"`
	// Bootstrap says how a task starts with the table: BootstrapTimestamp
	// (the default) or BootstrapFull.
	Bootstrap string `json:"bootstrap,omitempty"`
}

// Table bootstrap modes.
const (
	// BootstrapTimestamp: the table's records take their place in the
	// timestamp order from the start, so that a stream record sees the
	// table as of its own timestamp, whenever the task runs (Kafka
	// Streams' KTable). A table loaded before the stream is read
	// completely before the stream's first record.
	BootstrapTimestamp = "timestamp"
	// BootstrapFull: at every start, the task applies the table up to the
	// end it has at that moment before any stream record, whatever the
	// timestamps (Samza's bootstrap streams); later records go in
	// timestamp order. A stream record may then see a table row newer
	// than itself, and what it sees depends on when the task started.
	BootstrapFull = "full"
)

// LimitsSpec is the job file's limits section. Zero: the defaults of
// package plugins (and 1 MiB for MaxBatchBytes).
type LimitsSpec struct {
	MemoryBytes    uint64        `json:"memory"`
	CallTimeout    time.Duration `json:"call-timeout"`
	MaxOutputBytes int           `json:"max-output-bytes"`
	// MaxBatchBytes caps the stored bytes read from one input per batch.
	MaxBatchBytes int `json:"max-batch-bytes"`
}

// JobState is a job's desired and actual state.
type JobState string

const (
	JobRunning JobState = "running"
	JobStopped JobState = "stopped"
	// JobFailed: the job could not start (for example its module no
	// longer compiles); Error says why.
	JobFailed JobState = "failed"
)

// TaskState is one task's state.
type TaskState string

const (
	TaskStarting  TaskState = "starting"
	TaskRestoring TaskState = "restoring" // rebuilding state from changelogs
	// TaskBootstrapping: running, and a table has not yet reached the end
	// it had when the task started. Stream records older than the table's
	// next record are processed meanwhile (timestamp order).
	TaskBootstrapping TaskState = "bootstrapping"
	TaskRunning       TaskState = "running"
	TaskBackoff       TaskState = "backoff" // failed; waiting to restart
	TaskStopped       TaskState = "stopped"
)

// JobStatus is what `sluice job list|status` shows.
type JobStatus struct {
	Name      string   `json:"name"`
	State     JobState `json:"state"`
	Error     string   `json:"error,omitempty"`
	Runtime   string   `json:"runtime"`
	ModuleSHA string   `json:"module_sha256"`
	Inputs    []string `json:"inputs"`
	Outputs   []string `json:"outputs"`
	// Tables are the job's table topics.
	Tables   []string  `json:"tables,omitempty"`
	Deployed time.Time `json:"deployed"`
	// Version is the active version in the job's history (see History).
	Version int `json:"version,omitempty"`
	// LastDeployError is why the newest deployment of the job failed,
	// when it did (the job runs its previous version).
	LastDeployError string       `json:"last_deploy_error,omitempty"`
	Tasks           []TaskStatus `json:"tasks"`
}

// TaskStatus is one task's figures.
type TaskStatus struct {
	Partition int32     `json:"partition"`
	State     TaskState `json:"state"`
	// Inputs has one entry per input topic, in the job's order.
	Inputs []InputPosition `json:"inputs"`
	// RecordsIn/Out count since the task (not the instance) started.
	RecordsIn     uint64    `json:"records_in"`
	RecordsOut    uint64    `json:"records_out"`
	RecordsPerSec float64   `json:"records_per_sec"` // input records/s over the last few seconds
	Skipped       uint64    `json:"skipped"`
	DeadLettered  uint64    `json:"dead_lettered"`
	Restarts      int       `json:"restarts"`
	LastError     string    `json:"last_error,omitempty"`
	LastErrorAt   time.Time `json:"last_error_at,omitempty"`
	// Tables has one entry per table, in the job's order.
	Tables []TablePosition `json:"tables,omitempty"`
	// StreamTime is the largest timestamp of the stream records the task
	// has handled (milliseconds; -1: none yet).
	StreamTime int64 `json:"stream_time"`
	// Restore is set while the task restores a store from its changelog.
	Restore *RestoreProgress `json:"restore,omitempty"`
	// LastSwapPause is how long the task paused the last time it changed
	// to a new version of the job in place.
	LastSwapPause time.Duration `json:"last_swap_pause,omitempty"`
}

// InputPosition is a task's place in one input partition.
type InputPosition struct {
	Topic     string `json:"topic"`
	Position  int64  `json:"position"`  // next offset to process
	Committed int64  `json:"committed"` // last checkpoint (-1: none)
	End       int64  `json:"end"`       // high watermark
	Lag       int64  `json:"lag"`       // End - Committed (End - log start if none)
}

// TablePosition is a task's place in one table partition.
type TablePosition struct {
	Table    string `json:"table"`
	Topic    string `json:"topic"`
	Position int64  `json:"position"` // next offset to apply
	End      int64  `json:"end"`      // high watermark
	// BootstrapEnd is the high watermark when the task started; the
	// table is bootstrapped once Position reaches it.
	BootstrapEnd int64  `json:"bootstrap_end"`
	Applied      uint64 `json:"applied"` // records applied since the task started
}

// RestoreProgress is a store being rebuilt from its changelog.
type RestoreProgress struct {
	Store    string `json:"store"`
	Restored int64  `json:"restored"` // changelog records applied
	Total    int64  `json:"total"`    // changelog records to apply (estimate from offsets)
}

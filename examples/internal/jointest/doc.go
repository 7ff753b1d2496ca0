//go:build !wasip1

// Package jointest is test support for the join examples
// (examples/enrich, examples/attribution): an in-memory plugins.Host to
// run an operator module in sluice's wazero runtime (stores, read-only
// tables and stream time, as a task provides them), helpers to drive a
// real node started with internal/testnode (CLI commands, job files,
// output counts, status, reading topics), and the multiset comparison of
// outputs the tests report with.
//
// It is for tests only: it fails the test it is given rather than
// returning errors.
package jointest

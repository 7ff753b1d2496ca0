// Package host holds the end-to-end conformance suite for stream
// processing: it runs real `sluice serve` processes, deploys the word-count
// example with the real CLI (`sluice build`, `sluice job deploy`), feeds it
// with a Kafka client and checks the counts against ones computed here,
// independently of the operators, including across kill -9 of the node.
//
// Processing is at-least-once: after a crash, input after a task's last
// checkpoint is processed again. The crash test bounds the resulting
// over-count by what was not yet checkpointed when the node died (see
// TestWordCountSurvivesKillNine).
package host

// Package state is a task's local state: the named key/value stores an
// operator reads and writes through the state_* host functions, kept in one
// Pebble database per task with an in-memory layer in front, and made
// durable by appending every change to each store's changelog topic.
//
// # Layers
//
// A read looks, in order, at:
//
//  1. the writes staged by the current sluice_process call (EndCall(true)
//     commits them, EndCall(false) discards them: a call's effects are
//     atomic, as the ABI promises);
//  2. the dirty set: writes of committed calls since the last Flush;
//  3. a read cache of values known to equal Pebble's;
//  4. Pebble.
//
// The first three are one map per store from key to an entry that carries
// a committed value (clean, dirty or deleted) and a staged value. Keeping
// them in one map means a get followed by a put of the same key costs two
// map lookups and no allocation once the key is known: the operator that
// counts words does exactly that for every word.
//
// # Durability
//
// The changelog is the source of truth, Pebble a cache of it. Flush, called
// at every checkpoint, appends the dirty set to the changelogs (RecordBatch
// v2: key = state key, value = the value, or null for a delete), waits until
// the appends are durable, and only then writes the same entries to Pebble
// in one batch together with each store's next changelog offset (its "meta"
// key). That batch is not fsynced: if the machine loses it, Pebble's meta
// offset is simply behind the changelog and Restore replays the difference.
// Replaying is idempotent because the log is applied in order and the meta
// offset moves in the same atomic batch as the data.
//
// Restore runs before a task processes anything. It brings each store from
// its meta offset up to the changelog's high watermark. A store with no
// meta offset, or whose offset lies outside the changelog's current range
// (the changelog was recreated, or retention removed records the store
// never saw), is wiped and rebuilt from the log start.
//
// # Tables
//
// A table store (Store.Table) is a task's partition of a job's table: a
// compacted topic co-partitioned with the inputs, readable by the operator
// (Get, Scan) but not writable (Put and Delete fail with ErrReadOnly). Its
// Store.Changelog is the table's topic partition itself, and the State
// never appends to it. Instead the host reads the topic and calls
// ApplyTable for each record, between guest calls and in timestamp order
// with its other inputs: a value sets the key, a null value deletes it.
// Applies go straight into the dirty set (they are not staged), so the
// next call sees them, and move the store's next table offset
// (TableOffset) past the record.
//
// Flush writes a table's applies to Pebble in the same batch as the other
// stores' entries, with the next table offset as the store's meta offset
// (under its own meta key, so that a store that changes between table and
// changelog store is rebuilt rather than misread). Rollback drops unflushed
// applies and sets TableOffset back to the flushed offset, from which the
// host reads the table again. Restore does not replay tables: it keeps a
// table store whose meta offset lies within the topic partition's
// [log start, high watermark] and wipes any other (no meta offset, or the
// topic was recreated or truncated), which then starts again at the log
// start. ChangelogOffsets leaves tables out; TableOffsets lists them.
//
// # Damage
//
// A Pebble directory that does not open, whose format key is missing or
// foreign, whose meta values do not parse, or in which a full read at Open
// finds a checksum failure, is moved aside to "<dir>.corrupt" (replacing
// an older one) with a warning, and a fresh database is rebuilt from the
// changelogs by Restore. Corruption Pebble reports later, while the task
// runs, leaves a marker file in the directory so that the next Open
// rebuilds too. The full read at Open costs time proportional to the local
// state, which is always less than restoring it. A rebuilt database has no
// meta offsets, so its table stores start again at their topics' log start.
//
// # Keys in Pebble
//
//	0x00 0x00                       format key, value formatVersion
//	0x00 len(name) name             meta key of a store: next changelog offset, u64 BE
//	0x01 len(name) name key         a store's data
//	0x02 len(name) name             meta key of a table store: next table offset, u64 BE
//
// Stores are identified by name, not by their position in the job, so that
// adding a store to a job keeps the others. Stores no longer in the job are
// dropped at Open.
//
// A State is used by one task goroutine and is not safe for concurrent use.
package state

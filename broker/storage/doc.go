// Package storage is sluice's log engine: it keeps one partition's records
// on local disk as an append-only, offset-addressed sequence of Kafka
// RecordBatch v2 batches, and serves them back by offset or by timestamp.
//
// # Layout
//
// A Partition is a directory. Each segment is three files named by the
// segment's base offset (the offset of its first batch):
//
//	00000000000000000000.log        batches, byte for byte as produced
//	00000000000000000000.index      sparse offset index (closed segments)
//	00000000000000000000.timeindex  sparse time index (closed segments)
//	00000000000000004711.snapshot   producer state as of offset 4711
//
// The last segment is the active one and the only one appended to. An
// offset index entry is (relative offset uint32, file position uint32),
// added before a batch once IndexIntervalBytes have been written since the
// previous entry. A time index entry is (max timestamp int64, relative
// offset uint32), added at the same points when the segment's max
// timestamp has grown; it means "no batch up to and including this offset
// has a timestamp above this one". Both files end with a 16-byte trailer
// (log size, magic, CRC-32C) described in index.go.
//
// # Why
//
// Why store the produced bytes: the broker only rewrites the base offset
// and leader epoch, which the batch CRC does not cover, so a fetch is a
// pread of stored bytes and the end-to-end CRC still holds.
//
// Why group commit by default (FlushSync): an acknowledged write must
// survive a power failure. Appends write under the partition lock, then
// wait for an fsync; whichever waiter finds no fsync running becomes the
// leader, captures the log end, runs fdatasync and wakes everyone it
// covered. Appends arriving during one fsync share the next one, so the
// cost of durability is one fsync per group, not per request. The high
// watermark (what Read exposes) only moves to fsynced offsets, so no
// consumer ever sees data a crash could take back.
//
// Why AppendAsync: group commit only batches appends that wait at the same
// time. A caller that must answer requests in order (one Kafka connection
// pipelining produce requests) would otherwise wait out one fsync per
// request. AppendAsync writes at once, so the order is fixed, and returns a
// Pending to wait on later; appends made before the first wait all ride on
// its fsync. Append is AppendAsync followed by Wait.
//
// What each mode can lose:
//
//   - FlushSync: nothing acknowledged, even on power failure.
//   - FlushInterval: a process crash loses nothing (the kernel has the
//     data); a power failure loses up to one FlushInterval of acknowledged
//     writes. Consumers may read data that is not yet on disk.
//   - FlushOS: like FlushInterval, but the window is whatever the kernel
//     has not written back (typically up to 30 s on Linux). Segments are
//     still fsynced when they roll and on Close.
//
// Why indexes live in memory and only closed segments have index files:
// the active segment is always scanned on open (below), which rebuilds its
// index for free, so writing its index on the append path would only cost
// syscalls. A closed segment's index is written once, fsynced, and carries
// a CRC and the size of the log it describes; an index that fails either
// check, is not monotonic, points outside the log, or whose last entry
// does not land on the batch it names is rebuilt from the log.
//
// Why the active segment is always scanned on open: it is the only segment
// that can hold unfsynced bytes. Every batch is checked by CRC and offset
// continuity and the log is cut at the first bad one, so a torn write is
// never served. Closed segments were fsynced (with their indexes) when they
// rolled; they get the cheap index checks above, and every batch Read
// returns is CRC-checked again. The cost is bounded by SegmentBytes.
//
// Why producer snapshots: idempotent-producer state (epoch and the last
// five batches per producer id) must survive a restart. A snapshot is
// written at every roll and on Close; on open the newest snapshot at or
// below the recovered log end is loaded and the batch headers after it
// (normally just the active segment) are replayed. Headers only: no
// records are decoded. Without any usable snapshot the headers of the
// whole log are replayed.
//
// Why retention.bytes stops short: as in Kafka, the oldest closed segment
// is deleted only while the rest of the log still holds RetentionBytes, so
// the log ends up between RetentionBytes and RetentionBytes plus one
// segment, never below what the user asked to keep.
//
// Why tombstones are timed by their own timestamp: compaction removes a
// tombstone (a record with a key and a null value) once now >= timestamp +
// DeleteRetentionMs and the segment holding it is closed. This needs no
// extra state, and because the active segment is never cleaned a consumer
// that keeps up always sees it. A producer that stamps tombstones far in
// the past shortens their life accordingly; Kafka instead counts from the
// first cleaning (KIP-534).
//
// # Replication
//
// In cluster mode (Config.ExternalHW) the partition stores and the
// replication layer decides what is committed. Appends and fsyncs move
// DurableEnd (fsynced under FlushSync, the log end otherwise) and wake
// NotifyAppend and the SetOnDurable callback, but never the high
// watermark: the leader sets it with SetHighWatermark to what its in-sync
// replicas have, clamped to its own DurableEnd. After a restart the high
// watermark starts at the log start, because the recovered tail may never
// have reached the other replicas.
//
// A follower reads the leader with ReadReplica (bounded by the log end,
// not the high watermark) and stores the bytes with AppendReplica, which
// keeps the leader's offsets and epochs, insists that the first batch
// starts at the log end and that batches are contiguous (ErrOffsetMismatch
// otherwise, nothing written), and replays producer headers without
// sequence checks, so a follower that becomes leader recognises retries.
// Batches with offset gaps, as compaction leaves them in closed segments,
// are rejected: replicating compacted parts of a log needs AppendReplica
// to accept gaps first.
//
// Why a leader-epoch cache: a follower that was cut off may hold a tail the
// new leader never had. It asks the leader where its own latest epoch ends
// (EndOffsetForEpoch) and truncates there (TruncateTo), as in KIP-101,
// instead of trusting a high watermark that may itself be stale. The cache
// maps each epoch to the offset of its first batch; it is stored in
// "leader-epoch-checkpoint" (see epochs.go) and rewritten only when it
// changes. A missing or damaged file is rebuilt from batch headers on open.
//
// Why TruncateTo cuts at batch boundaries: a batch is the unit that carries
// the CRC and the producer sequence range, so a half batch could be neither
// served nor replayed. Truncation deletes later segments newest first and
// only then shortens the holding segment, so a crash at any point leaves a
// prefix of the old log, which the retried truncation cuts again. The
// holding segment becomes the active one, unless compaction left offset
// gaps in it: the active segment must be contiguous (recovery checks it),
// so that one stays closed and an empty active segment starts at the new
// end. Producer state is rebuilt from the newest snapshot at or below the
// new end, snapshots above it are deleted, and appends that were not yet
// durable fail their Pending.Wait rather than wait for offsets that are
// gone. TruncateTo is the only way the high watermark goes down.
//
// # Concurrency
//
// Partition.mu serializes appends, rolls and config changes. segMu guards
// the segment list and the lifetime of file handles: readers hold it
// shared for the whole read (so a file is never closed under a pread),
// while roll, retention, a compaction swap, a truncation and Close hold it
// exclusively for a moment. Truncation takes cleanMu, then mu, so it never
// runs during a Clean or an append. Clean runs under cleanMu and builds new files without any
// of the other locks. The log end offset, high watermark and log start
// offset are atomics so that Read never waits for an append; the high
// watermark and DurableEnd are raised under mu or syncMu and lowered only
// by truncation, which holds both. truncGen counts truncations so that a
// group-commit fsync or a Pending from before one publishes nothing and
// waits for nothing that the truncation removed.
package storage

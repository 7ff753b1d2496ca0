/*
 * sluice.h - the sluice C SDK: write sluice operators in C, compiled to a
 * WebAssembly WASI reactor that speaks ABI v1 (abi/SPEC.md).
 *
 * An operator is one or more .c files that include this header and define
 *
 *     int sluice_handle(const sluice_record *r, sluice_emitter *out);
 *
 * and optionally sluice_on_init, sluice_on_batch_start and
 * sluice_on_batch_end (below). sluice.c implements the ABI: the exports
 * memory, sluice_alloc, sluice_init, sluice_process (and _initialize, from
 * the reactor start files), the sluice_v1 imports, batch decoding, output
 * buffering (ONE emit host call per batch) and error reporting.
 *
 * Build with `sluice build DIR`, which runs
 *
 *     clang --target=wasm32-wasi --sysroot=/usr -O2 -mexec-model=reactor \
 *           -Wl,--strip-all -Wl,-z,stack-size=1048576 -Wl,--stack-first \
 *           -I sdk/c -o DIR/DIR.wasm DIR/(each .c) sdk/c/sluice.c
 *
 * (plus -ffile-prefix-map options so that no path ends up in the module).
 * The stack is 1 MiB and comes first in memory: an overflow traps instead
 * of overwriting static data. Keep big buffers static or on the heap.
 *
 * Conventions:
 *   - Byte strings are (pointer, int32_t length) pairs. A length of -1 is
 *     null (the pointer is then ignored), 0 is empty.
 *   - Functions that can fail return an int32_t: >= 0 is success (a length
 *     or a handle), negative is one of the SLUICE_ERR_* codes.
 *   - An instance is single-threaded; nothing here is thread-safe.
 */
#ifndef SLUICE_H
#define SLUICE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Codes (abi/SPEC.md 8.1) and SDK-only codes ---- */

#define SLUICE_OK 0
#define SLUICE_ERR_NOT_FOUND (-1)         /* sluice_get: no value for the key */
#define SLUICE_ERR_MALFORMED (-2)         /* reserved by the ABI */
#define SLUICE_ERR_BAD_STORE (-3)         /* unknown store name or handle */
#define SLUICE_ERR_BAD_OUTPUT (-4)        /* unknown output index or partition */
#define SLUICE_ERR_BUFFER_TOO_SMALL (-5)  /* state_scan: handled by sluice_scan */
#define SLUICE_ERR_LIMIT (-6)             /* key over 64 KiB or value over 8 MiB */
#define SLUICE_ERR_NOT_ALLOWED (-7)       /* e.g. sluice_put from sluice_on_init */
#define SLUICE_ERR_INTERNAL (-8)          /* the host failed: return promptly */
#define SLUICE_ERR_NO_MEMORY (-100)       /* SDK: malloc/realloc failed */
#define SLUICE_ERR_INVALID (-101)         /* SDK: bad argument (e.g. length < -1) */
#define SLUICE_ERR_HOST (-102)            /* SDK: the host's answer made no sense */

/* A short description of a code, e.g. "unknown store". Never NULL. */
const char *sluice_code_name(int32_t code);

/* ---- Log levels (abi/SPEC.md 8.3, log/slog's) ---- */

#define SLUICE_LEVEL_DEBUG (-4)
#define SLUICE_LEVEL_INFO 0
#define SLUICE_LEVEL_WARN 4
#define SLUICE_LEVEL_ERROR 8

/* Writes msg (a C string) to the task's log. Long messages are truncated
 * by the host (16 KiB). */
void sluice_log(int32_t level, const char *msg);
/* sluice_log with printf formatting (formatted into a 16 KiB buffer). */
void sluice_logf(int32_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- Records ---- */

/* A record header. Keys are never null; value_len -1 is a null value. */
typedef struct sluice_header {
    const uint8_t *key;
    int32_t key_len;
    const uint8_t *value;
    int32_t value_len;
} sluice_header;

/* An input record. key, value and headers point into the batch, which the
 * host overwrites with the next one: they are valid only until
 * sluice_handle returns. Copy what you keep. */
typedef struct sluice_record {
    int64_t offset;       /* offset in its input partition */
    int64_t timestamp;    /* ms since the Unix epoch, -1 if none */
    uint32_t input;       /* index of its topic in the job's inputs */
    int32_t partition;    /* the input partition (= the task's number) */
    uint32_t index;       /* 0-based index of the record in its batch */
    const uint8_t *key;   /* NULL when key_len is -1 */
    int32_t key_len;      /* -1 null */
    const uint8_t *value; /* NULL when value_len is -1 */
    int32_t value_len;    /* -1 null */
    uint32_t header_count;
    const uint8_t *headers_; /* private: the encoded headers (validated) */
    /* The task's stream time at this record (abi/SPEC.md 12.1): the
     * largest timestamp >= 0 of the stream records handed to the operator
     * up to and including this one, -1 if none. Computed by the SDK as
     * max(sluice_stream_time(), timestamps of the batch's records up to
     * this one); it does not depend on how the host cuts batches. A
     * record with timestamp < stream_time is out of order. */
    int64_t stream_time;
} sluice_record;

/* Sets *h to header i (0-based) of r. Returns 0, or SLUICE_ERR_INVALID if
 * i >= r->header_count. Walks the headers: O(i). */
int32_t sluice_record_header(const sluice_record *r, uint32_t i, sluice_header *h);

/* ---- Outputs ---- */

#define SLUICE_PARTITION_BY_KEY (-1)  /* murmur2 of the key, as Kafka */
#define SLUICE_TIMESTAMP_INHERIT (-1) /* the host uses the batch's last record's */

/* Collects a batch's outputs. The SDK copies what is emitted into one
 * buffer (grown with realloc) and hands it to the host in one emit call
 * after the batch's last record (and sluice_on_batch_end), only if no
 * record failed. */
typedef struct sluice_emitter sluice_emitter;

/* Emits key/value to output 0, partitioned by key, with the timestamp of
 * the record being handled (in sluice_on_batch_end: of the batch's last
 * record), as the Go SDK's Emit. Returns 0 or SLUICE_ERR_NO_MEMORY /
 * SLUICE_ERR_INVALID; after an error the whole batch fails (status 2). */
int32_t sluice_emit(sluice_emitter *out, const void *key, int32_t key_len,
                    const void *value, int32_t value_len);

/* Emits to the job's output at index `output` (its place in the outputs
 * list), to `partition` (or SLUICE_PARTITION_BY_KEY) with timestamp `ts`
 * in ms (or SLUICE_TIMESTAMP_INHERIT). An output or partition the job does
 * not have fails the record that emitted it (found after the batch). */
int32_t sluice_emit_to(sluice_emitter *out, uint32_t output, int32_t partition, int64_t ts,
                       const void *key, int32_t key_len, const void *value, int32_t value_len);

/* sluice_emit_to with headers (n of them; header keys must not be null). */
int32_t sluice_emit_headers(sluice_emitter *out, uint32_t output, int32_t partition, int64_t ts,
                            const void *key, int32_t key_len, const void *value, int32_t value_len,
                            const sluice_header *headers, uint32_t n);

/* Re-emits r unchanged (key, value, headers, timestamp) to output 0, by key. */
int32_t sluice_forward(sluice_emitter *out, const sluice_record *r);

/* ---- Failing ---- */

/* Sets the error message of the current record (in sluice_handle), of the
 * init (in sluice_on_init) or of the batch (in sluice_on_batch_end); it
 * takes effect when that function returns non-zero. The message is copied
 * (up to 4 KiB). Without it the SDK says which function returned what. */
void sluice_fail(const char *msg);
/* sluice_fail with printf formatting. */
void sluice_failf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- State stores ---- */

/* Resolves a store declared under stores: (or a table declared under
 * tables:, read-only) in the job file to a handle
 * (>= 0), or returns SLUICE_ERR_BAD_STORE. Handles stay valid for the
 * instance's life; open once (sluice_on_init or lazily). */
int32_t sluice_store_open(const char *name);

/* Looks key up. Returns the value's length n (>= 0) and copies the value
 * to buf only if n <= cap; otherwise nothing is written and the caller
 * retries with a buffer of n bytes. SLUICE_ERR_NOT_FOUND (-1) if absent, or
 * another negative code. buf may be NULL when cap is 0. */
int32_t sluice_get(int32_t store, const void *key, int32_t key_len, void *buf, int32_t cap);

/* Sets key to value (value_len 0 is an empty value; -1 is treated as 0).
 * Writes made in sluice_process are staged by the host and kept only if
 * the batch succeeds; reads see them. SLUICE_ERR_NOT_ALLOWED from init,
 * and on a table. */
int32_t sluice_put(int32_t store, const void *key, int32_t key_len, const void *value, int32_t value_len);

/* Removes key (absent keys are fine). */
int32_t sluice_delete(int32_t store, const void *key, int32_t key_len);

/* Called by sluice_scan for each entry; key and value are valid only during
 * the call. Return 0 to go on, anything else to stop the scan. */
typedef int (*sluice_scan_fn)(void *ctx, const uint8_t *key, int32_t key_len,
                              const uint8_t *value, int32_t value_len);

/* Calls fn for every entry with start <= key < end in ascending byte-wise
 * key order. end_len 0 (or -1) means no upper bound; start_len 0 (or -1)
 * starts at the first key. Fetches a page at a time (16 KiB, grown when one
 * entry needs more). Returns 0 when every entry was seen, fn's non-zero
 * return value if it stopped the scan (return positive values from fn to
 * tell them apart from errors), or a negative code. */
int32_t sluice_scan(int32_t store, const void *start, int32_t start_len, const void *end,
                    int32_t end_len, sluice_scan_fn fn, void *ctx);

/* ---- Tables (abi/SPEC.md 12.4) ----
 *
 * A table of the job (tables: in the job file) is a store opened by name
 * with sluice_store_open and read with sluice_get and sluice_scan. It is
 * read-only: sluice_put and sluice_delete on its handle return
 * SLUICE_ERR_NOT_ALLOWED (from the host). The host updates it between
 * calls (a table record with a null value deletes its key), so do not
 * keep values read from a table across batches. */

/* ---- Stream time and time keys (abi/SPEC.md 12) ---- */

/* The task's stream time at the start of the current batch (or, in
 * sluice_on_init, as of the instance's start): the largest timestamp >= 0
 * of the stream records handed to the operator before, -1 if none. Never
 * the wall clock. The SDK asks the host once per batch; a record's own
 * stream time is r->stream_time. */
int64_t sluice_stream_time(void);

/* Writes the 8-byte time key of ts (ms) to out: big-endian
 * (uint64_t)ts ^ 1<<63, so that byte-wise order is timestamp order,
 * negative timestamps included. Key windowed state by
 * time key ++ id and expire it by scanning
 * [sluice_time_key(INT64_MIN), sluice_time_key(cutoff)) and deleting. */
void sluice_time_key(uint8_t out[8], int64_t ts);

/* The timestamp encoded by the time key in in[0..7]. */
int64_t sluice_time_key_decode(const uint8_t in[8]);

/* ---- Parameters ---- */

/* The job file's `parameters`, as JSON bytes (the SDK's copy, valid for the
 * instance's life). len may be 0 (no parameters). */
typedef struct sluice_params {
    const uint8_t *json;
    int32_t len;
} sluice_params;

/* The raw JSON; *len (if len is not NULL) gets its length. Parse it with
 * any JSON library for anything beyond the getters below. */
const uint8_t *sluice_params_raw(const sluice_params *p, int32_t *len);

/* Tiny getters for a FLAT JSON object of strings and integers. They look
 * at top-level keys only (nested objects and arrays are skipped), do not
 * check the JSON strictly, and return def when the key is absent, the
 * document is not an object, or the value has another type.
 * sluice_param_string decodes escapes (\uXXXX of the BMP and surrogate
 * pairs, to UTF-8) into a malloc'd copy kept for the instance's life (def
 * itself is returned as is). sluice_param_int accepts a JSON integer in
 * int64 range (no fraction or exponent). */
const char *sluice_param_string(const sluice_params *p, const char *key, const char *def);
int64_t sluice_param_int(const sluice_params *p, const char *key, int64_t def);

/* ---- What the operator defines ---- */

/* Required. Handles one record; emits through out. 0 = ok; non-zero fails
 * the record (message: sluice_fail), which discards the whole batch's
 * outputs and state writes and applies the job's error policy, which may
 * re-run the records before it (so keep per-batch effects in state, not in
 * globals, or reset them in sluice_on_batch_start). */
int sluice_handle(const sluice_record *r, sluice_emitter *out);

/* Optional (weak): runs once, from sluice_init, with the parameters.
 * Non-zero fails the deploy or the task start. Stores may be opened and
 * read here; writes and emits are refused. */
__attribute__((weak)) int sluice_on_init(const sluice_params *p);

/* Optional (weak): runs before the first record of every batch, including
 * a batch re-run after a failed record: reset per-batch scratch here. */
__attribute__((weak)) void sluice_on_batch_start(void);

/* Optional (weak): runs after the last record of a batch in which no record
 * failed, before the outputs go to the host: aggregate per batch in
 * sluice_handle, then update state and emit here. Non-zero fails the task
 * (status 2; it restarts from its last checkpoint). */
__attribute__((weak)) int sluice_on_batch_end(sluice_emitter *out);

#ifdef __cplusplus
}
#endif

#endif /* SLUICE_H */

/*
 * count is the second operator of the word count example, in C: it reads
 * records keyed by word, keeps each word's running count in the state store
 * "counts" (key = the word, value = the count as decimal ASCII), and emits
 * to output 0 records with key = the word and value = its new count as
 * decimal ASCII. It makes the same outputs and state as the Go version
 * (examples/wordcount/go/count).
 *
 * Counts are updated and emitted once per word per batch, after the batch's
 * last record, in the order the words first appear in the batch. Each
 * word's stored count is read once per batch, at its first record; a stored
 * value that is not a decimal integer fails that record. Records with a
 * null key carry no word and are ignored.
 *
 * The batch's words live in a hash table (open addressing, linear probing,
 * FNV-1a) over an array of tallies in first-appearance order; the words'
 * bytes are copied into one arena. All three are reset per batch and grow
 * with realloc.
 *
 * Build with `sluice build examples/wordcount/c/count`.
 */
#include <stdlib.h>
#include <string.h>

#include "sluice.h"

typedef struct {
    uint32_t hash;
    uint32_t word; /* offset of the word in the arena */
    int32_t len;
    uint64_t total; /* int64 arithmetic that wraps as Go's */
} tally;

static tally *tallies; /* the batch's words, in order of first appearance */
static uint32_t ntallies, tallies_cap;
static int32_t *slots; /* index into tallies + 1; 0 = empty */
static uint32_t nslots; /* a power of two */
static uint8_t *arena;
static size_t arena_len, arena_cap;

static int32_t store = -1;

static uint32_t fnv1a(const uint8_t *p, int32_t n) {
    uint32_t h = 2166136261u;
    for (int32_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 16777619u;
    }
    return h;
}

void sluice_on_batch_start(void) {
    ntallies = 0;
    arena_len = 0;
    if (slots) memset(slots, 0, sizeof *slots * nslots);
}

/* Doubles the table and re-inserts the tallies. */
static int grow_slots(void) {
    uint32_t n = nslots ? nslots * 2 : 1024;
    int32_t *s = calloc(n, sizeof *s);
    if (s == NULL) return 0;
    for (uint32_t i = 0; i < ntallies; i++) {
        uint32_t j = tallies[i].hash & (n - 1);
        while (s[j]) j = (j + 1) & (n - 1);
        s[j] = (int32_t)i + 1;
    }
    free(slots);
    slots = s;
    nslots = n;
    return 1;
}

/* decode parses a count as the Go SDK's Int64 codec does: an optional '-'
 * and 1 to 19 decimal digits, in int64 range. */
static int decode(const uint8_t *b, int32_t n, int64_t *out) {
    int neg = n > 0 && b[0] == '-';
    const uint8_t *d = neg ? b + 1 : b;
    int32_t nd = neg ? n - 1 : n;
    if (nd <= 0 || nd > 19) return 0;
    uint64_t v = 0;
    for (int32_t i = 0; i < nd; i++) {
        if (d[i] < '0' || d[i] > '9') return 0;
        v = v * 10 + (uint64_t)(d[i] - '0');
    }
    if (neg) {
        if (v > (uint64_t)1 << 63) return 0;
        *out = (int64_t)(0 - v);
        return 1;
    }
    if (v > (uint64_t)INT64_MAX) return 0;
    *out = (int64_t)v;
    return 1;
}

/* encode writes v in decimal ASCII at the end of buf[21]; returns the
 * start. */
static char *encode(int64_t v, char *buf, int32_t *len) {
    char *p = buf + 21;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) *--p = '-';
    *len = (int32_t)(buf + 21 - p);
    return p;
}

/* Quotes a word for an error message, as Go's %q would roughly. */
static const char *quoted(const uint8_t *b, int32_t n, char *buf, size_t cap) {
    size_t j = 0;
    buf[j++] = '"';
    for (int32_t i = 0; i < n && j + 6 < cap; i++) {
        uint8_t c = b[i];
        if (c == '"' || c == '\\') {
            buf[j++] = '\\';
            buf[j++] = (char)c;
        } else if (c < 0x20 || c >= 0x7f) {
            static const char hex[] = "0123456789abcdef";
            buf[j++] = '\\';
            buf[j++] = 'x';
            buf[j++] = hex[c >> 4];
            buf[j++] = hex[c & 15];
        } else {
            buf[j++] = (char)c;
        }
    }
    buf[j++] = '"';
    buf[j] = 0;
    return buf;
}

/* Reads the stored count of a word (0 if absent). Returns 0 and fails the
 * record on an error. */
static int stored_count(const uint8_t *word, int32_t len, int64_t *n) {
    if (store < 0) {
        store = sluice_store_open("counts");
        if (store < 0) {
            sluice_failf("sluice: store \"counts\": open: %s", sluice_code_name(store));
            store = -1;
            return 0;
        }
    }
    uint8_t buf[32];
    char q[200];
    int32_t got = sluice_get(store, word, len, buf, sizeof buf);
    if (got == SLUICE_ERR_NOT_FOUND) {
        *n = 0;
        return 1;
    }
    if (got < 0) {
        sluice_failf("sluice: store \"counts\": get: %s", sluice_code_name(got));
        return 0;
    }
    /* A value longer than the buffer is longer than any int64. */
    if (got > (int32_t)sizeof buf || !decode(buf, got, n)) {
        char v[100];
        sluice_failf("sluice: store \"counts\": decoding the value of %s: %s: not a decimal integer",
                     quoted(word, len, q, sizeof q),
                     got > (int32_t)sizeof buf ? "(too long)" : quoted(buf, got, v, sizeof v));
        return 0;
    }
    return 1;
}

int sluice_handle(const sluice_record *r, sluice_emitter *out) {
    (void)out;
    if (r->key_len < 0) return 0; /* null key: no word */
    const uint8_t *key = r->key;
    int32_t len = r->key_len;
    if (ntallies * 2 >= nslots && !grow_slots()) {
        sluice_fail("count: out of memory");
        return 1;
    }
    uint32_t h = fnv1a(key, len);
    uint32_t j = h & (nslots - 1);
    for (; slots[j]; j = (j + 1) & (nslots - 1)) {
        tally *t = &tallies[slots[j] - 1];
        if (t->hash == h && t->len == len && memcmp(arena + t->word, key, (size_t)len) == 0) {
            t->total++;
            return 0;
        }
    }
    /* The word's first record in this batch: start from its stored count. */
    int64_t n;
    if (!stored_count(key, len, &n)) return 1;
    if (ntallies == tallies_cap) {
        uint32_t c = tallies_cap ? tallies_cap * 2 : 1024;
        tally *nt = realloc(tallies, sizeof *nt * c);
        if (nt == NULL) {
            sluice_fail("count: out of memory");
            return 1;
        }
        tallies = nt;
        tallies_cap = c;
    }
    if (arena_cap - arena_len < (size_t)len) {
        size_t c = arena_cap * 2 + (size_t)len + 4096;
        uint8_t *na = realloc(arena, c);
        if (na == NULL) {
            sluice_fail("count: out of memory");
            return 1;
        }
        arena = na;
        arena_cap = c;
    }
    if (len > 0) memcpy(arena + arena_len, key, (size_t)len);
    tally *t = &tallies[ntallies];
    t->hash = h;
    t->word = (uint32_t)arena_len;
    t->len = len;
    t->total = (uint64_t)n + 1;
    arena_len += (size_t)len;
    slots[j] = (int32_t)++ntallies;
    return 0;
}

int sluice_on_batch_end(sluice_emitter *out) {
    char buf[21];
    for (uint32_t i = 0; i < ntallies; i++) {
        tally *t = &tallies[i];
        int32_t n;
        char *v = encode((int64_t)t->total, buf, &n);
        int32_t rc = sluice_put(store, arena + t->word, t->len, v, n);
        if (rc != SLUICE_OK) {
            sluice_failf("sluice: store \"counts\": put: %s", sluice_code_name(rc));
            return 1;
        }
        rc = sluice_emit(out, arena + t->word, t->len, v, n);
        if (rc != SLUICE_OK) {
            sluice_failf("emit: %s", sluice_code_name(rc));
            return 1;
        }
    }
    return 0;
}

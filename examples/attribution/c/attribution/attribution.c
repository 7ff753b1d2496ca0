/*
 * attribution is the attribution example's operator in C: a windowed
 * stream-stream join with event time. It makes the same outputs and state
 * as the Go version (examples/attribution/go/attribution), which documents
 * the semantics:
 *
 *   - input 0 impressions, input 1 clicks, both keyed by ad id, the value
 *     the impression or click id; records with a null key or value are
 *     ignored;
 *   - at every record, state expires by the record's stream time st
 *     (impressions with ts + window + lateness < st, reporting to output 1
 *     those that matched no click; clicks with ts + lateness < st);
 *   - a record with ts < st - lateness is late: output 2, value
 *     "impression:<id>" or "click:<id>", nothing else;
 *   - otherwise it pairs with every buffered record of the other kind of
 *     the same ad with 0 <= click ts - impression ts <= window (output 0,
 *     value "<impression id> <click id>", the click's timestamp) and is
 *     buffered.
 *
 * Parameters: window (default "10m") and lateness (default "1m"), as
 * duration strings: one or more <integer><unit> with unit ms, s, m or h
 * ("500ms", "30s", "10m", "1h30m"); anything else fails the init.
 *
 * Stores "impression-buffer" and "click-buffer" hold each buffered record under
 * 'T' + time key(ts) + ad + id (value: an impression's matched flag, "0"
 * or "1") and 'A' + ad + time key(ts) + id (empty value), the ad written
 * as a 2-byte big-endian length and its bytes.
 *
 * Build with `sluice build examples/attribution/c/attribution`.
 */
#include <stdlib.h>
#include <string.h>

#include "sluice.h"

static int64_t window_ms, lateness_ms;
static int64_t expired_at;
static int32_t imps = -1, clks = -1;

/* A growable byte buffer. */
typedef struct {
    uint8_t *p;
    int32_t len, cap;
} buf;

static int reserve(buf *b, int64_t extra) {
    int64_t need = (int64_t)b->len + extra;
    if (need <= b->cap) return 1;
    if (need > INT32_MAX) return 0;
    int64_t c = b->cap ? b->cap : 256;
    while (c < need) c *= 2;
    if (c > INT32_MAX) c = INT32_MAX;
    uint8_t *n = realloc(b->p, (size_t)c);
    if (n == NULL) return 0;
    b->p = n;
    b->cap = (int32_t)c;
    return 1;
}

static int add(buf *b, const void *p, int32_t n) {
    if (!reserve(b, n)) return 0;
    if (n > 0) memcpy(b->p + b->len, p, (size_t)n);
    b->len += n;
    return 1;
}

static int add_byte(buf *b, uint8_t c) { return add(b, &c, 1); }

static int add_time(buf *b, int64_t ts) {
    uint8_t k[8];
    sluice_time_key(k, ts);
    return add(b, k, 8);
}

static int add_ad(buf *b, const uint8_t *ad, int32_t n) {
    uint8_t l[2] = {(uint8_t)(n >> 8), (uint8_t)n};
    return add(b, l, 2) && add(b, ad, n);
}

static int time_index(buf *b, int64_t ts, const uint8_t *ad, int32_t adn, const uint8_t *id, int32_t idn) {
    b->len = 0;
    return add_byte(b, 'T') && add_time(b, ts) && add_ad(b, ad, adn) && add(b, id, idn);
}

static int ad_index(buf *b, const uint8_t *ad, int32_t adn, int64_t ts, const uint8_t *id, int32_t idn) {
    b->len = 0;
    return add_byte(b, 'A') && add_ad(b, ad, adn) && add_time(b, ts) && add(b, id, idn);
}

/* Splits a time index key. */
static int parse_time(const uint8_t *k, int32_t n, int64_t *ts, const uint8_t **ad, int32_t *adn,
                      const uint8_t **id, int32_t *idn) {
    if (n < 11 || k[0] != 'T') return 0;
    *ts = sluice_time_key_decode(k + 1);
    int32_t l = (int32_t)k[9] << 8 | k[10];
    if (n < 11 + l) return 0;
    *ad = k + 11;
    *adn = l;
    *id = k + 11 + l;
    *idn = n - 11 - l;
    return 1;
}

/* Parses a duration string into ms. */
static int parse_duration(const char *s, int64_t *ms) {
    int64_t total = 0;
    if (*s == 0) return 0;
    if (strcmp(s, "0") == 0) {
        *ms = 0;
        return 1;
    }
    while (*s) {
        if (*s < '0' || *s > '9') return 0;
        int64_t v = 0;
        while (*s >= '0' && *s <= '9') {
            if (v > INT64_MAX / 10 - 9) return 0;
            v = v * 10 + (*s++ - '0');
        }
        int64_t unit;
        if (s[0] == 'm' && s[1] == 's') {
            unit = 1;
            s += 2;
        } else if (s[0] == 's') {
            unit = 1000;
            s++;
        } else if (s[0] == 'm') {
            unit = 60000;
            s++;
        } else if (s[0] == 'h') {
            unit = 3600000;
            s++;
        } else {
            return 0;
        }
        if (v > (INT64_MAX - total) / unit) return 0;
        total += v * unit;
    }
    *ms = total;
    return 1;
}

int sluice_on_init(const sluice_params *p) {
    const char *w = sluice_param_string(p, "window", "10m");
    const char *l = sluice_param_string(p, "lateness", "1m");
    if (!parse_duration(w, &window_ms)) {
        sluice_failf("attribution: parameter window: %s is not a duration such as \"10m\" (units ms, s, m, h)", w);
        return 1;
    }
    if (!parse_duration(l, &lateness_ms)) {
        sluice_failf("attribution: parameter lateness: %s is not a duration such as \"1m\" (units ms, s, m, h)", l);
        return 1;
    }
    imps = sluice_store_open("impression-buffer");
    clks = sluice_store_open("click-buffer");
    if (imps < 0 || clks < 0) {
        sluice_fail("attribution: declare the stores impression-buffer and click-buffer under stores: in the job file");
        return 1;
    }
    return 0;
}

/* Per store (impressions, clicks): the cutoff below which everything is
 * already expired, so that an expiry scan starts there instead of walking
 * over the entries deleted before (until the store compacts them away);
 * committed_below is its value as of the last batch that committed, which
 * a failed batch's retry starts from. */
static int64_t expired_below[2] = {INT64_MIN, INT64_MIN};
static int64_t committed_below[2] = {INT64_MIN, INT64_MIN};

void sluice_on_batch_start(void) {
    expired_at = INT64_MIN;
    expired_below[0] = committed_below[0];
    expired_below[1] = committed_below[1];
}

int sluice_on_batch_end(sluice_emitter *out) {
    (void)out;
    committed_below[0] = expired_below[0];
    committed_below[1] = expired_below[1];
    return 0;
}

static buf key, end, val, list, tmp;

static int fail_code(const char *what, int32_t rc) {
    sluice_failf("attribution: %s: %s", what, sluice_code_name(rc));
    return 1;
}

static int oom(void) {
    sluice_fail("attribution: out of memory");
    return 1;
}

/* Scan callbacks return 1 when out of memory (or an emit failed). */

/* Collects expired entries into list: flag byte ('u' unmatched impression,
 * '-' otherwise), 4-byte length, the time index key. */
static int collect_expired(void *ctx, const uint8_t *k, int32_t kn, const uint8_t *v, int32_t vn) {
    int is_imps = *(int *)ctx;
    uint8_t flag = is_imps && vn == 1 && v[0] == '0' ? 'u' : '-';
    uint8_t l[4];
    memcpy(l, &kn, 4);
    if (!add_byte(&list, flag) || !add(&list, l, 4) || !add(&list, k, kn)) return 1;
    return 0;
}

static int expire(int64_t st, sluice_emitter *out) {
    for (int pass = 0; pass < 2; pass++) {
        int is_imps = pass == 0;
        int32_t store = is_imps ? imps : clks;
        int64_t cutoff = is_imps ? st - window_ms - lateness_ms : st - lateness_ms;
        if (cutoff <= expired_below[pass]) continue;
        end.len = 0;
        if (!add_byte(&end, 'T') || !add_time(&end, cutoff)) return oom();
        tmp.len = 0;
        if (!add_byte(&tmp, 'T') || !add_time(&tmp, expired_below[pass])) return oom();
        expired_below[pass] = cutoff;
        list.len = 0;
        int32_t rc = sluice_scan(store, tmp.p, tmp.len, end.p, end.len, collect_expired, &is_imps);
        if (rc == 1) return oom();
        if (rc < 0) return fail_code("scan", rc);
        for (int32_t at = 0; at < list.len;) {
            uint8_t flag = list.p[at];
            int32_t kn;
            memcpy(&kn, list.p + at + 1, 4);
            const uint8_t *k = list.p + at + 5;
            at += 5 + kn;
            int64_t ts;
            const uint8_t *ad, *id;
            int32_t adn, idn;
            if (!parse_time(k, kn, &ts, &ad, &adn, &id, &idn)) {
                sluice_fail("attribution: malformed key in a store");
                return 1;
            }
            if (flag == 'u') {
                rc = sluice_emit_to(out, 1, SLUICE_PARTITION_BY_KEY, ts, ad, adn, id, idn);
                if (rc != SLUICE_OK) return fail_code("emit", rc);
            }
            rc = sluice_delete(store, k, kn);
            if (rc != SLUICE_OK) return fail_code("delete", rc);
            if (!ad_index(&key, ad, adn, ts, id, idn)) return oom();
            rc = sluice_delete(store, key.p, key.len);
            if (rc != SLUICE_OK) return fail_code("delete", rc);
        }
    }
    return 0;
}

typedef struct {
    const sluice_record *r;
    sluice_emitter *out;
    int32_t prefix; /* length of 'A' + ad */
    int matched;
} pairing;

/* An impression meets a buffered click (key in the clicks' ad index). */
static int pair_click(void *ctx, const uint8_t *k, int32_t kn, const uint8_t *v, int32_t vn) {
    (void)v;
    (void)vn;
    pairing *p = ctx;
    int64_t ts = sluice_time_key_decode(k + p->prefix);
    val.len = 0;
    if (!add(&val, p->r->value, p->r->value_len) || !add_byte(&val, ' ') ||
        !add(&val, k + p->prefix + 8, kn - p->prefix - 8))
        return 1;
    if (sluice_emit_to(p->out, 0, SLUICE_PARTITION_BY_KEY, ts, p->r->key, p->r->key_len, val.p, val.len) != SLUICE_OK)
        return 1;
    p->matched = 1;
    return 0;
}

/* A click meets a buffered impression: emit, and remember the
 * impression's time index key (4-byte length + key) to mark it matched. */
static int pair_impression(void *ctx, const uint8_t *k, int32_t kn, const uint8_t *v, int32_t vn) {
    (void)v;
    (void)vn;
    pairing *p = ctx;
    int64_t ts = sluice_time_key_decode(k + p->prefix);
    const uint8_t *id = k + p->prefix + 8;
    int32_t idn = kn - p->prefix - 8;
    val.len = 0;
    if (!add(&val, id, idn) || !add_byte(&val, ' ') || !add(&val, p->r->value, p->r->value_len)) return 1;
    if (sluice_emit_to(p->out, 0, SLUICE_PARTITION_BY_KEY, p->r->timestamp, p->r->key, p->r->key_len, val.p,
                       val.len) != SLUICE_OK)
        return 1;
    if (!time_index(&tmp, ts, p->r->key, p->r->key_len, id, idn)) return 1;
    uint8_t l[4];
    memcpy(l, &tmp.len, 4);
    if (!add(&list, l, 4) || !add(&list, tmp.p, tmp.len)) return 1;
    return 0;
}

static int buffer(int32_t store, const sluice_record *r, const char *flag, int32_t flagn) {
    if (!time_index(&key, r->timestamp, r->key, r->key_len, r->value, r->value_len)) return oom();
    int32_t rc = sluice_put(store, key.p, key.len, flag, flagn);
    if (rc != SLUICE_OK) return fail_code("put", rc);
    if (!ad_index(&key, r->key, r->key_len, r->timestamp, r->value, r->value_len)) return oom();
    rc = sluice_put(store, key.p, key.len, "", 0);
    if (rc != SLUICE_OK) return fail_code("put", rc);
    return 0;
}

int sluice_handle(const sluice_record *r, sluice_emitter *out) {
    if (r->key_len < 0 || r->value_len < 0) return 0;
    int64_t st = r->stream_time;
    if (st >= 0 && st > expired_at) {
        if (expire(st, out)) return 1;
        expired_at = st;
    }
    if (r->timestamp < st - lateness_ms) {
        val.len = 0;
        const char *kind = r->input == 1 ? "click:" : "impression:";
        if (!add(&val, kind, (int32_t)strlen(kind)) || !add(&val, r->value, r->value_len)) return oom();
        int32_t rc = sluice_emit_to(out, 2, SLUICE_PARTITION_BY_KEY, r->timestamp, r->key, r->key_len, val.p, val.len);
        if (rc != SLUICE_OK) return fail_code("emit", rc);
        return 0;
    }
    pairing p = {r, out, 3 + r->key_len, 0};
    if (r->input == 0) {
        if (!ad_index(&key, r->key, r->key_len, r->timestamp, NULL, 0) ||
            !ad_index(&end, r->key, r->key_len, r->timestamp + window_ms + 1, NULL, 0))
            return oom();
        int32_t rc = sluice_scan(clks, key.p, key.len, end.p, end.len, pair_click, &p);
        if (rc == 1) return oom();
        if (rc < 0) return fail_code("scan", rc);
        return buffer(imps, r, p.matched ? "1" : "0", 1);
    }
    if (!ad_index(&key, r->key, r->key_len, r->timestamp - window_ms, NULL, 0) ||
        !ad_index(&end, r->key, r->key_len, r->timestamp + 1, NULL, 0))
        return oom();
    list.len = 0;
    int32_t rc = sluice_scan(imps, key.p, key.len, end.p, end.len, pair_impression, &p);
    if (rc == 1) return oom();
    if (rc < 0) return fail_code("scan", rc);
    for (int32_t at = 0; at < list.len;) {
        int32_t kn;
        memcpy(&kn, list.p + at, 4);
        rc = sluice_put(imps, list.p + at + 4, kn, "1", 1);
        if (rc != SLUICE_OK) return fail_code("put", rc);
        at += 4 + kn;
    }
    return buffer(clks, r, "", 0);
}

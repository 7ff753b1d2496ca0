/*
 * sluice.c - the sluice C SDK's implementation of ABI v1 (abi/SPEC.md):
 * the sluice_v1 imports, the exports sluice_alloc, sluice_init and
 * sluice_process, batch decoding, one emit per batch, state and params.
 * See sluice.h for the API and README.md for how to build.
 */
#include "sluice.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- sluice_v1 imports ---- */

#define SLUICE_IMPORT(name) __attribute__((import_module("sluice_v1"), import_name(name)))

SLUICE_IMPORT("check_abi_version_1") extern void sluice_import_check_abi_version_1(void);
SLUICE_IMPORT("emit") extern int32_t sluice_import_emit(const uint8_t *ptr, int32_t len);
SLUICE_IMPORT("store_open") extern int32_t sluice_import_store_open(const char *ptr, int32_t len);
SLUICE_IMPORT("state_get")
extern int32_t sluice_import_state_get(int32_t store, const void *key, int32_t klen, void *val, int32_t cap);
SLUICE_IMPORT("state_put")
extern int32_t sluice_import_state_put(int32_t store, const void *key, int32_t klen, const void *val, int32_t vlen);
SLUICE_IMPORT("state_delete")
extern int32_t sluice_import_state_delete(int32_t store, const void *key, int32_t klen);
SLUICE_IMPORT("state_scan")
extern int32_t sluice_import_state_scan(int32_t store, const void *start, int32_t slen, const void *end,
                                        int32_t elen, void *buf, int32_t cap);
SLUICE_IMPORT("log") extern void sluice_import_log(int32_t level, const char *ptr, int32_t len);
SLUICE_IMPORT("set_error") extern void sluice_import_set_error(int32_t index, const char *ptr, int32_t len);
SLUICE_IMPORT("stream_time") extern int32_t sluice_import_stream_time(int64_t *out);

/* ---- Constants of the layouts (abi/SPEC.md 5) ---- */

enum {
    BATCH_HEADER_SIZE = 16,
    RECORD_FIXED_SIZE = 32,
    HEADER_FIXED_SIZE = 8,
    OUTPUT_FIXED_SIZE = 28,
    SCAN_ENTRY_FIXED_SIZE = 8,
    MAX_ERROR_MESSAGE = 4096,
    MAX_LOG_MESSAGE = 16384,
    STATUS_OK = 0,
    STATUS_RECORD_FAILED = 1,
    STATUS_BROKEN = 2, /* fails the task: not one record's fault */
    INITIAL_SCAN_BUF = 16 << 10,
};

static uint32_t load32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t load64(const uint8_t *p) { return (uint64_t)load32(p) | (uint64_t)load32(p + 4) << 32; }
static void store32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}
static void store64(uint8_t *p, uint64_t v) {
    store32(p, (uint32_t)v);
    store32(p + 4, (uint32_t)(v >> 32));
}

/* ---- Codes and logging ---- */

const char *sluice_code_name(int32_t code) {
    switch (code) {
    case SLUICE_OK: return "ok";
    case SLUICE_ERR_NOT_FOUND: return "not found";
    case SLUICE_ERR_MALFORMED: return "malformed";
    case SLUICE_ERR_BAD_STORE: return "unknown store";
    case SLUICE_ERR_BAD_OUTPUT: return "unknown output or partition";
    case SLUICE_ERR_BUFFER_TOO_SMALL: return "buffer too small";
    case SLUICE_ERR_LIMIT: return "key or value too large";
    case SLUICE_ERR_NOT_ALLOWED: return "not allowed now";
    case SLUICE_ERR_INTERNAL: return "host internal error";
    case SLUICE_ERR_NO_MEMORY: return "out of memory";
    case SLUICE_ERR_INVALID: return "invalid argument";
    case SLUICE_ERR_HOST: return "unexpected answer from the host";
    }
    return code < 0 ? "unknown error code" : "not an error";
}

void sluice_log(int32_t level, const char *msg) {
    if (msg == NULL) msg = "";
    size_t n = strlen(msg);
    if (n > MAX_LOG_MESSAGE) n = MAX_LOG_MESSAGE;
    sluice_import_log(level, msg, (int32_t)n);
}

static char log_buf[MAX_LOG_MESSAGE + 1];

void sluice_logf(int32_t level, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(log_buf, sizeof log_buf, fmt, ap);
    va_end(ap);
    sluice_log(level, log_buf);
}

/* ---- Failure messages ---- */

static char fail_msg[MAX_ERROR_MESSAGE + 1];
static int fail_set;

void sluice_fail(const char *msg) {
    if (msg == NULL) msg = "";
    size_t n = strlen(msg);
    if (n > MAX_ERROR_MESSAGE) n = MAX_ERROR_MESSAGE;
    memcpy(fail_msg, msg, n);
    fail_msg[n] = 0;
    fail_set = 1;
}

void sluice_failf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(fail_msg, sizeof fail_msg, fmt, ap);
    va_end(ap);
    fail_set = 1;
}

/* set_error with the operator's message, or a default naming what returned
 * what. */
static void report_failure(int32_t index, const char *what, int rc) {
    if (!fail_set) snprintf(fail_msg, sizeof fail_msg, "%s returned %d", what, rc);
    sluice_import_set_error(index, fail_msg, (int32_t)strlen(fail_msg));
    fail_set = 0;
}

/* ---- sluice_alloc ---- */

static void *region;

__attribute__((export_name("sluice_alloc"))) void *sluice_alloc(int32_t size) {
    if (size < 0) return NULL;
    /* The ABI lets the guest free the previous region now. */
    free(region);
    region = malloc(size > 0 ? (size_t)size : 1);
    return region;
}

/* ---- Parameters ---- */

static sluice_params params;

const uint8_t *sluice_params_raw(const sluice_params *p, int32_t *len) {
    if (len) *len = p ? p->len : 0;
    return p ? p->json : NULL;
}

typedef struct {
    const uint8_t *p, *end;
} cursor;

static void skip_ws(cursor *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) c->p++;
}

/* Skips a JSON string starting at its opening quote; returns 0 if it is
 * unterminated. */
static int skip_string(cursor *c) {
    c->p++;
    while (c->p < c->end) {
        if (*c->p == '\\') {
            c->p += 2;
            continue;
        }
        if (*c->p++ == '"') return 1;
    }
    return 0;
}

/* Skips any JSON value (loosely: nested brackets are matched, strings
 * skipped). Returns 0 on a structural error. */
static int skip_value(cursor *c) {
    skip_ws(c);
    if (c->p >= c->end) return 0;
    if (*c->p == '"') return skip_string(c);
    if (*c->p == '{' || *c->p == '[') {
        int depth = 0;
        while (c->p < c->end) {
            uint8_t b = *c->p;
            if (b == '"') {
                if (!skip_string(c)) return 0;
                continue;
            }
            c->p++;
            if (b == '{' || b == '[') depth++;
            if ((b == '}' || b == ']') && --depth == 0) return 1;
        }
        return 0;
    }
    while (c->p < c->end && *c->p != ',' && *c->p != '}' && *c->p != ']' && *c->p != ' ' && *c->p != '\t' &&
           *c->p != '\n' && *c->p != '\r')
        c->p++;
    return 1;
}

static int hexval(uint8_t b) {
    if (b >= '0' && b <= '9') return b - '0';
    if (b >= 'a' && b <= 'f') return b - 'a' + 10;
    if (b >= 'A' && b <= 'F') return b - 'A' + 10;
    return -1;
}

static int read_hex4(const uint8_t *p, const uint8_t *end, uint32_t *out) {
    if (end - p < 4) return 0;
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(p[i]);
        if (h < 0) return 0;
        v = v << 4 | (uint32_t)h;
    }
    *out = v;
    return 1;
}

/* Decodes the JSON string at c (at its opening quote) into dst (at least as
 * long as the encoded string plus one), NUL-terminated. Returns the
 * decoded length or -1. */
static int32_t decode_string(cursor *c, char *dst) {
    int32_t n = 0;
    c->p++;
    while (c->p < c->end) {
        uint8_t b = *c->p++;
        if (b == '"') {
            if (dst) dst[n] = 0;
            return n;
        }
        if (b != '\\') {
            if (dst) dst[n] = (char)b;
            n++;
            continue;
        }
        if (c->p >= c->end) return -1;
        b = *c->p++;
        uint32_t cp;
        switch (b) {
        case 'b': cp = '\b'; break;
        case 'f': cp = '\f'; break;
        case 'n': cp = '\n'; break;
        case 'r': cp = '\r'; break;
        case 't': cp = '\t'; break;
        case 'u':
            if (!read_hex4(c->p, c->end, &cp)) return -1;
            c->p += 4;
            if (cp >= 0xD800 && cp < 0xDC00 && c->end - c->p >= 6 && c->p[0] == '\\' && c->p[1] == 'u') {
                uint32_t lo;
                if (read_hex4(c->p + 2, c->end, &lo) && lo >= 0xDC00 && lo < 0xE000) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    c->p += 6;
                }
            }
            if (cp >= 0xD800 && cp < 0xE000) cp = 0xFFFD;
            break;
        default: cp = b; /* \" \\ \/ */
        }
        char u[4];
        int k;
        if (cp < 0x80) {
            u[0] = (char)cp;
            k = 1;
        } else if (cp < 0x800) {
            u[0] = (char)(0xC0 | cp >> 6);
            u[1] = (char)(0x80 | (cp & 0x3F));
            k = 2;
        } else if (cp < 0x10000) {
            u[0] = (char)(0xE0 | cp >> 12);
            u[1] = (char)(0x80 | (cp >> 6 & 0x3F));
            u[2] = (char)(0x80 | (cp & 0x3F));
            k = 3;
        } else {
            u[0] = (char)(0xF0 | cp >> 18);
            u[1] = (char)(0x80 | (cp >> 12 & 0x3F));
            u[2] = (char)(0x80 | (cp >> 6 & 0x3F));
            u[3] = (char)(0x80 | (cp & 0x3F));
            k = 4;
        }
        if (dst) memcpy(dst + n, u, (size_t)k);
        n += k;
    }
    return -1;
}

/* Finds key among the top-level members of the object in p; on success c
 * is at the start of the value (whitespace skipped). */
static int find_param(const sluice_params *p, const char *key, cursor *c) {
    if (p == NULL || p->json == NULL || key == NULL) return 0;
    c->p = p->json;
    c->end = p->json + p->len;
    skip_ws(c);
    if (c->p >= c->end || *c->p != '{') return 0;
    c->p++;
    size_t klen = strlen(key);
    char small[256];
    for (;;) {
        skip_ws(c);
        if (c->p >= c->end || *c->p != '"') return 0;
        /* The decoded key is never longer than the encoded one. */
        cursor probe = *c;
        if (!skip_string(&probe)) return 0;
        size_t enc = (size_t)(probe.p - c->p);
        char *name = enc < sizeof small ? small : malloc(enc + 1);
        if (name == NULL) return 0;
        int32_t n = decode_string(c, name);
        int match = n >= 0 && (size_t)n == klen && memcmp(name, key, klen) == 0;
        if (name != small) free(name);
        if (n < 0) return 0;
        skip_ws(c);
        if (c->p >= c->end || *c->p != ':') return 0;
        c->p++;
        skip_ws(c);
        if (match) return 1;
        if (!skip_value(c)) return 0;
        skip_ws(c);
        if (c->p >= c->end || *c->p != ',') return 0;
        c->p++;
    }
}

const char *sluice_param_string(const sluice_params *p, const char *key, const char *def) {
    cursor c;
    if (!find_param(p, key, &c) || c.p >= c.end || *c.p != '"') return def;
    cursor probe = c;
    if (!skip_string(&probe)) return def;
    char *s = malloc((size_t)(probe.p - c.p) + 1);
    if (s == NULL) return def;
    if (decode_string(&c, s) < 0) {
        free(s);
        return def;
    }
    return s;
}

int64_t sluice_param_int(const sluice_params *p, const char *key, int64_t def) {
    cursor c;
    if (!find_param(p, key, &c)) return def;
    int neg = c.p < c.end && *c.p == '-';
    if (neg) c.p++;
    uint64_t v = 0;
    int digits = 0;
    while (c.p < c.end && *c.p >= '0' && *c.p <= '9') {
        uint64_t d = (uint64_t)(*c.p++ - '0');
        if (v > (UINT64_MAX - d) / 10) return def;
        v = v * 10 + d;
        digits++;
    }
    if (digits == 0) return def;
    if (c.p < c.end && (*c.p == '.' || *c.p == 'e' || *c.p == 'E')) return def;
    if (neg) {
        if (v > (uint64_t)INT64_MAX + 1) return def;
        return (int64_t)(0 - v);
    }
    if (v > (uint64_t)INT64_MAX) return def;
    return (int64_t)v;
}

/* ---- sluice_init ---- */

__attribute__((export_name("sluice_init"))) int32_t sluice_init(const uint8_t *ptr, int32_t len) {
    /* Declares ABI v1; calling it keeps the import in the module. */
    sluice_import_check_abi_version_1();
    if (len < 0 || (len > 0 && ptr == NULL)) {
        sluice_import_set_error(-1, "sluice: bad parameters from the host", 36);
        return 1;
    }
    /* The parameters live in the region, which the first batch overwrites. */
    uint8_t *copy = malloc(len > 0 ? (size_t)len : 1);
    if (copy == NULL) {
        sluice_fail("sluice: out of memory copying the parameters");
        report_failure(-1, "sluice_init", 1);
        return 1;
    }
    if (len > 0) memcpy(copy, ptr, (size_t)len);
    free((void *)params.json);
    params.json = copy;
    params.len = len;
    if (sluice_on_init) {
        fail_set = 0;
        int rc = sluice_on_init(&params);
        if (rc != 0) {
            report_failure(-1, "sluice_on_init", rc);
            return 1;
        }
    }
    return STATUS_OK;
}

/* ---- The emitter ---- */

struct sluice_emitter {
    uint8_t *buf;
    size_t len, cap;
    /* marks[i] is len when record i started, to trace a refused output to
     * the record that emitted it. */
    uint32_t *marks;
    size_t marks_cap;
    uint32_t nmarks;
    int64_t timestamp; /* of the record being handled */
    int32_t error;     /* sticky: an emit failed, the batch fails */
};

static sluice_emitter emitter;

static int32_t emitter_fail(sluice_emitter *e, int32_t code) {
    if (e->error == 0) e->error = code;
    return code;
}

static int32_t emit_raw(sluice_emitter *e, uint32_t output, int32_t partition, int64_t ts, const void *key,
                        int32_t klen, const void *value, int32_t vlen, const sluice_header *hs, uint32_t n) {
    if (e == NULL) return SLUICE_ERR_INVALID;
    if (klen < -1 || vlen < -1 || (klen > 0 && key == NULL) || (vlen > 0 && value == NULL) ||
        (n > 0 && hs == NULL))
        return emitter_fail(e, SLUICE_ERR_INVALID);
    uint64_t need = OUTPUT_FIXED_SIZE + (uint64_t)(klen > 0 ? klen : 0) + (uint64_t)(vlen > 0 ? vlen : 0);
    for (uint32_t i = 0; i < n; i++) {
        if (hs[i].key_len < 0 || hs[i].value_len < -1 || (hs[i].key_len > 0 && hs[i].key == NULL) ||
            (hs[i].value_len > 0 && hs[i].value == NULL))
            return emitter_fail(e, SLUICE_ERR_INVALID);
        need += HEADER_FIXED_SIZE + (uint64_t)hs[i].key_len + (uint64_t)(hs[i].value_len > 0 ? hs[i].value_len : 0);
    }
    /* A wasm32 memory holds at most 4 GiB; the host's output limit is far
     * below. */
    if (need > 0x7fffffffu - e->len) return emitter_fail(e, SLUICE_ERR_NO_MEMORY);
    if (e->cap - e->len < need) {
        size_t cap = e->cap * 2 + (size_t)need;
        if (cap < 4096) cap = 4096;
        uint8_t *nb = realloc(e->buf, cap);
        if (nb == NULL) return emitter_fail(e, SLUICE_ERR_NO_MEMORY);
        e->buf = nb;
        e->cap = cap;
    }
    uint8_t *p = e->buf + e->len;
    store32(p, output);
    store32(p + 4, (uint32_t)partition);
    store64(p + 8, (uint64_t)ts);
    store32(p + 16, (uint32_t)klen);
    store32(p + 20, (uint32_t)vlen);
    store32(p + 24, n);
    p += OUTPUT_FIXED_SIZE;
    if (klen > 0) memcpy(p, key, (size_t)klen), p += klen;
    if (vlen > 0) memcpy(p, value, (size_t)vlen), p += vlen;
    for (uint32_t i = 0; i < n; i++) {
        store32(p, (uint32_t)hs[i].key_len);
        store32(p + 4, (uint32_t)hs[i].value_len);
        p += HEADER_FIXED_SIZE;
        if (hs[i].key_len > 0) memcpy(p, hs[i].key, (size_t)hs[i].key_len), p += hs[i].key_len;
        if (hs[i].value_len > 0) memcpy(p, hs[i].value, (size_t)hs[i].value_len), p += hs[i].value_len;
    }
    e->len += (size_t)need;
    return SLUICE_OK;
}

int32_t sluice_emit(sluice_emitter *out, const void *key, int32_t key_len, const void *value, int32_t value_len) {
    if (out == NULL) return SLUICE_ERR_INVALID;
    return emit_raw(out, 0, SLUICE_PARTITION_BY_KEY, out->timestamp, key, key_len, value, value_len, NULL, 0);
}

int32_t sluice_emit_to(sluice_emitter *out, uint32_t output, int32_t partition, int64_t ts, const void *key,
                       int32_t key_len, const void *value, int32_t value_len) {
    return emit_raw(out, output, partition, ts, key, key_len, value, value_len, NULL, 0);
}

int32_t sluice_emit_headers(sluice_emitter *out, uint32_t output, int32_t partition, int64_t ts,
                            const void *key, int32_t key_len, const void *value, int32_t value_len,
                            const sluice_header *headers, uint32_t n) {
    return emit_raw(out, output, partition, ts, key, key_len, value, value_len, headers, n);
}

int32_t sluice_forward(sluice_emitter *out, const sluice_record *r) {
    if (out == NULL || r == NULL) return SLUICE_ERR_INVALID;
    if (r->header_count == 0)
        return emit_raw(out, 0, SLUICE_PARTITION_BY_KEY, r->timestamp, r->key, r->key_len, r->value,
                        r->value_len, NULL, 0);
    sluice_header small[8];
    sluice_header *hs = r->header_count <= 8 ? small : malloc(sizeof *hs * r->header_count);
    if (hs == NULL) return emitter_fail(out, SLUICE_ERR_NO_MEMORY);
    for (uint32_t i = 0; i < r->header_count; i++) sluice_record_header(r, i, &hs[i]);
    int32_t rc = emit_raw(out, 0, SLUICE_PARTITION_BY_KEY, r->timestamp, r->key, r->key_len, r->value,
                          r->value_len, hs, r->header_count);
    if (hs != small) free(hs);
    return rc;
}

static void emitter_reset(sluice_emitter *e) {
    e->len = 0;
    e->nmarks = 0;
    e->error = 0;
}

/* Size of the (well-formed, our own) output at p. */
static size_t output_size(const uint8_t *p) {
    int32_t kl = (int32_t)load32(p + 16), vl = (int32_t)load32(p + 20);
    uint32_t n = load32(p + 24);
    size_t size = OUTPUT_FIXED_SIZE + (size_t)(kl > 0 ? kl : 0) + (size_t)(vl > 0 ? vl : 0);
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *h = p + size;
        int32_t hk = (int32_t)load32(h), hv = (int32_t)load32(h + 4);
        size += HEADER_FIXED_SIZE + (size_t)hk + (size_t)(hv > 0 ? hv : 0);
    }
    return size;
}

/* flush hands the batch's outputs to the host in one emit call. When the
 * host refuses them (an unknown output or partition), it re-emits them one
 * at a time to find the record responsible and fails that record, as the
 * Go SDK does; the host discards the call's effects, so the repeats do no
 * harm. Outputs of sluice_on_batch_end are traced to the last record. */
static int32_t emitter_flush(sluice_emitter *e) {
    if (e->len == 0) return STATUS_OK;
    int32_t code = sluice_import_emit(e->buf, (int32_t)e->len);
    if (code == SLUICE_OK) return STATUS_OK;
    if (code == SLUICE_ERR_BAD_OUTPUT) {
        for (uint32_t i = 0; i < e->nmarks; i++) {
            size_t off = e->marks[i];
            size_t end = i + 1 < e->nmarks ? e->marks[i + 1] : e->len;
            while (off < end) {
                size_t n = output_size(e->buf + off);
                if (sluice_import_emit(e->buf + off, (int32_t)n) != SLUICE_OK) {
                    int32_t part = (int32_t)load32(e->buf + off + 4);
                    char pbuf[16];
                    if (part == SLUICE_PARTITION_BY_KEY)
                        snprintf(pbuf, sizeof pbuf, "by key");
                    else
                        snprintf(pbuf, sizeof pbuf, "%d", (int)part);
                    sluice_failf("emit to output %u, partition %s: %s", (unsigned)load32(e->buf + off), pbuf,
                                 sluice_code_name(SLUICE_ERR_BAD_OUTPUT));
                    report_failure((int32_t)i, "emit", code);
                    return STATUS_RECORD_FAILED;
                }
                off += n;
            }
        }
    }
    sluice_logf(SLUICE_LEVEL_ERROR, "sluice: emit of %zu bytes of outputs failed: %s (%d)", e->len,
                sluice_code_name(code), (int)code);
    return STATUS_BROKEN;
}

/* ---- Records ---- */

int32_t sluice_record_header(const sluice_record *r, uint32_t i, sluice_header *h) {
    if (r == NULL || h == NULL || i >= r->header_count) return SLUICE_ERR_INVALID;
    /* The headers were checked when the batch was decoded. */
    const uint8_t *p = r->headers_;
    for (;;) {
        int32_t kl = (int32_t)load32(p), vl = (int32_t)load32(p + 4);
        if (i-- == 0) {
            h->key = p + HEADER_FIXED_SIZE;
            h->key_len = kl;
            h->value = vl >= 0 ? p + HEADER_FIXED_SIZE + kl : NULL;
            h->value_len = vl;
            return SLUICE_OK;
        }
        p += HEADER_FIXED_SIZE + (size_t)kl + (size_t)(vl > 0 ? vl : 0);
    }
}

/* Takes a nullable byte string of length len from [*p, end). */
static int take(const uint8_t **p, const uint8_t *end, int32_t len, const uint8_t **out) {
    if (len == -1) {
        *out = NULL;
        return 1;
    }
    if (len < 0 || (size_t)(end - *p) < (size_t)len) return 0;
    *out = *p;
    *p += len;
    return 1;
}

static int32_t broken_batch(const char *why, uint32_t i, uint32_t count) {
    emitter_reset(&emitter);
    sluice_logf(SLUICE_LEVEL_ERROR, "sluice: cannot decode the input batch: record %u of %u: %s", (unsigned)i,
                (unsigned)count, why);
    return STATUS_BROKEN;
}

/* ---- Stream time and time keys ---- */

int64_t sluice_stream_time(void) {
    int64_t st = -1;
    if (sluice_import_stream_time(&st) != SLUICE_OK) return -1;
    return st;
}

void sluice_time_key(uint8_t out[8], int64_t ts) {
    uint64_t u = (uint64_t)ts ^ ((uint64_t)1 << 63);
    for (int i = 7; i >= 0; i--) {
        out[i] = (uint8_t)u;
        u >>= 8;
    }
}

int64_t sluice_time_key_decode(const uint8_t in[8]) {
    uint64_t u = 0;
    for (int i = 0; i < 8; i++) u = u << 8 | in[i];
    return (int64_t)(u ^ ((uint64_t)1 << 63));
}

static int32_t process_batch(const uint8_t *batch, int32_t batch_len) {
    if (batch_len < BATCH_HEADER_SIZE || batch == NULL) {
        emitter_reset(&emitter);
        sluice_logf(SLUICE_LEVEL_ERROR, "sluice: cannot decode the input batch: %d bytes, shorter than its header",
                    (int)batch_len);
        return STATUS_BROKEN;
    }
    const uint8_t *p = batch + BATCH_HEADER_SIZE, *end = batch + batch_len;
    uint32_t count = load32(batch);
    int32_t partition = (int32_t)load32(batch + 4);
    if (count > (uint32_t)(end - p) / RECORD_FIXED_SIZE)
        return broken_batch("the count is more than the batch can hold", 0, count);
    emitter_reset(&emitter);
    emitter.timestamp = SLUICE_TIMESTAMP_INHERIT;
    if (emitter.marks_cap < count) {
        uint32_t *m = realloc(emitter.marks, sizeof *m * count);
        if (m == NULL) {
            sluice_log(SLUICE_LEVEL_ERROR, "sluice: out of memory for the batch's record marks");
            return STATUS_BROKEN;
        }
        emitter.marks = m;
        emitter.marks_cap = count;
    }
    if (sluice_on_batch_start) sluice_on_batch_start();
    /* Each record's stream time: the batch's start, moved by its
     * timestamps (negative ones never count: st >= -1). */
    int64_t st = sluice_stream_time();
    sluice_record r;
    for (uint32_t i = 0; i < count; i++) {
        if ((size_t)(end - p) < RECORD_FIXED_SIZE) return broken_batch("truncated", i, count);
        r.offset = (int64_t)load64(p);
        r.timestamp = (int64_t)load64(p + 8);
        if (r.timestamp > st) st = r.timestamp;
        r.stream_time = st;
        r.input = load32(p + 16);
        r.partition = partition;
        r.index = i;
        r.key_len = (int32_t)load32(p + 20);
        r.value_len = (int32_t)load32(p + 24);
        r.header_count = load32(p + 28);
        p += RECORD_FIXED_SIZE;
        if (!take(&p, end, r.key_len, &r.key) || !take(&p, end, r.value_len, &r.value))
            return broken_batch("key or value runs past the batch", i, count);
        r.headers_ = p;
        for (uint32_t h = 0; h < r.header_count; h++) {
            const uint8_t *hk, *hv;
            if ((size_t)(end - p) < HEADER_FIXED_SIZE) return broken_batch("malformed headers", i, count);
            int32_t kl = (int32_t)load32(p), vl = (int32_t)load32(p + 4);
            p += HEADER_FIXED_SIZE;
            if (kl < 0 || !take(&p, end, kl, &hk) || !take(&p, end, vl, &hv))
                return broken_batch("malformed headers", i, count);
        }
        emitter.marks[i] = (uint32_t)emitter.len;
        emitter.nmarks = i + 1;
        emitter.timestamp = r.timestamp;
        fail_set = 0;
        int rc = sluice_handle(&r, &emitter);
        if (rc != 0) {
            emitter_reset(&emitter);
            report_failure((int32_t)i, "sluice_handle", rc);
            return STATUS_RECORD_FAILED;
        }
        if (emitter.error != 0) {
            sluice_logf(SLUICE_LEVEL_ERROR, "sluice: record %u: emit failed: %s", (unsigned)i,
                        sluice_code_name(emitter.error));
            emitter_reset(&emitter);
            return STATUS_BROKEN;
        }
    }
    if (p != end) {
        emitter_reset(&emitter);
        sluice_logf(SLUICE_LEVEL_ERROR, "sluice: cannot decode the input batch: %zu bytes after the last of %u records",
                    (size_t)(end - p), (unsigned)count);
        return STATUS_BROKEN;
    }
    if (sluice_on_batch_end) {
        fail_set = 0;
        int rc = sluice_on_batch_end(&emitter);
        if (rc != 0) {
            if (!fail_set) snprintf(fail_msg, sizeof fail_msg, "returned %d", rc);
            fail_set = 0;
            sluice_logf(SLUICE_LEVEL_ERROR, "sluice: sluice_on_batch_end: %s", fail_msg);
            emitter_reset(&emitter);
            return STATUS_BROKEN;
        }
        if (emitter.error != 0) {
            sluice_logf(SLUICE_LEVEL_ERROR, "sluice: sluice_on_batch_end: emit failed: %s",
                        sluice_code_name(emitter.error));
            emitter_reset(&emitter);
            return STATUS_BROKEN;
        }
    }
    int32_t status = emitter_flush(&emitter);
    emitter_reset(&emitter);
    return status;
}

__attribute__((export_name("sluice_process"))) int32_t sluice_process(const uint8_t *batch, int32_t batch_len) {
    return process_batch(batch, batch_len);
}

/* ---- State ---- */

static int valid_bytes(const void *p, int32_t len) { return len >= -1 && (len <= 0 || p != NULL); }

int32_t sluice_store_open(const char *name) {
    if (name == NULL) return SLUICE_ERR_INVALID;
    int32_t h = sluice_import_store_open(name, (int32_t)strlen(name));
    return h;
}

int32_t sluice_get(int32_t store, const void *key, int32_t key_len, void *buf, int32_t cap) {
    if (!valid_bytes(key, key_len) || cap < 0 || (cap > 0 && buf == NULL)) return SLUICE_ERR_INVALID;
    if (key_len < 0) key_len = 0;
    return sluice_import_state_get(store, key, key_len, buf, cap);
}

int32_t sluice_put(int32_t store, const void *key, int32_t key_len, const void *value, int32_t value_len) {
    if (!valid_bytes(key, key_len) || !valid_bytes(value, value_len)) return SLUICE_ERR_INVALID;
    if (key_len < 0) key_len = 0;
    if (value_len < 0) value_len = 0;
    return sluice_import_state_put(store, key, key_len, value, value_len);
}

int32_t sluice_delete(int32_t store, const void *key, int32_t key_len) {
    if (!valid_bytes(key, key_len)) return SLUICE_ERR_INVALID;
    if (key_len < 0) key_len = 0;
    return sluice_import_state_delete(store, key, key_len);
}

int32_t sluice_scan(int32_t store, const void *start, int32_t start_len, const void *end, int32_t end_len,
                    sluice_scan_fn fn, void *ctx) {
    if (fn == NULL || !valid_bytes(start, start_len) || !valid_bytes(end, end_len)) return SLUICE_ERR_INVALID;
    if (start_len < 0) start_len = 0;
    if (end_len < 0) end_len = 0;
    int32_t cap = INITIAL_SCAN_BUF;
    uint8_t *buf = malloc((size_t)cap);
    /* next holds the start of the next page: the last key seen + 0x00. */
    size_t next_cap = (size_t)start_len + 1;
    uint8_t *next = malloc(next_cap);
    int32_t result = 0;
    if (buf == NULL || next == NULL) {
        result = SLUICE_ERR_NO_MEMORY;
        goto out;
    }
    if (start_len > 0) memcpy(next, start, (size_t)start_len);
    int32_t next_len = start_len;
    for (;;) {
        int32_t n = sluice_import_state_scan(store, next, next_len, end, end_len, buf, cap);
        if (n == 0) break;
        if (n == SLUICE_ERR_BUFFER_TOO_SMALL) {
            uint32_t need = load32(buf);
            if (need <= (uint32_t)cap || need > 0x7fffffffu) {
                result = SLUICE_ERR_HOST;
                goto out;
            }
            uint8_t *nb = realloc(buf, need);
            if (nb == NULL) {
                result = SLUICE_ERR_NO_MEMORY;
                goto out;
            }
            buf = nb;
            cap = (int32_t)need;
            continue;
        }
        if (n < 0) {
            result = n;
            goto out;
        }
        if (n > cap) {
            result = SLUICE_ERR_HOST;
            goto out;
        }
        const uint8_t *p = buf, *e = buf + n, *last = NULL;
        uint32_t last_len = 0;
        while (p < e) {
            if ((size_t)(e - p) < SCAN_ENTRY_FIXED_SIZE) {
                result = SLUICE_ERR_HOST;
                goto out;
            }
            uint32_t kl = load32(p), vl = load32(p + 4);
            p += SCAN_ENTRY_FIXED_SIZE;
            if ((size_t)(e - p) < (size_t)kl || (size_t)(e - p) - kl < (size_t)vl) {
                result = SLUICE_ERR_HOST;
                goto out;
            }
            int rc = fn(ctx, p, (int32_t)kl, p + kl, (int32_t)vl);
            last = p;
            last_len = kl;
            p += kl + vl;
            if (rc != 0) {
                result = rc;
                goto out;
            }
        }
        if (last == NULL) break;
        if (next_cap < (size_t)last_len + 1) {
            uint8_t *nn = realloc(next, (size_t)last_len + 1);
            if (nn == NULL) {
                result = SLUICE_ERR_NO_MEMORY;
                goto out;
            }
            next = nn;
            next_cap = (size_t)last_len + 1;
        }
        memcpy(next, last, last_len);
        next[last_len] = 0;
        next_len = (int32_t)last_len + 1;
    }
out:
    free(buf);
    free(next);
    return result;
}

/* A test operator exercising the C SDK's API; the record's key is the
 * command, its value the argument. See cwasm_test.go. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice.h"

static int32_t store = -1;
static const char *name;
static int64_t n;
static int batch_starts;

int sluice_on_init(const sluice_params *p) {
    if (sluice_param_int(p, "fail_init", 0) == 1) {
        sluice_failf("init refused: %s", sluice_param_string(p, "why", "no reason"));
        return 1;
    }
    name = sluice_param_string(p, "name", "def");
    n = sluice_param_int(p, "n", -1);
    store = sluice_store_open("s");
    if (store < 0) {
        sluice_fail("no store s");
        return 1;
    }
    sluice_log(SLUICE_LEVEL_INFO, "init done");
    return 0;
}

void sluice_on_batch_start(void) { batch_starts++; }

static int is(const sluice_record *r, const char *cmd) {
    return r->key_len == (int32_t)strlen(cmd) && memcmp(r->key, cmd, (size_t)r->key_len) == 0;
}

typedef struct {
    sluice_emitter *out;
    int count;
    int stop_at;
} scan_ctx;

static int on_entry(void *c, const uint8_t *k, int32_t kl, const uint8_t *v, int32_t vl) {
    scan_ctx *s = c;
    s->count++;
    sluice_emit(s->out, k, kl, v, vl);
    return s->stop_at > 0 && s->count == s->stop_at ? 7 : 0;
}

int sluice_handle(const sluice_record *r, sluice_emitter *out) {
    char buf[64];
    if (is(r, "fail")) {
        sluice_failf("boom: %.*s", r->value_len, (const char *)r->value);
        return 1;
    }
    if (is(r, "failnomsg")) return 42;
    if (is(r, "params")) {
        int len = snprintf(buf, sizeof buf, "%s|%lld", name, (long long)n);
        return sluice_emit(out, "params", 6, buf, len);
    }
    if (is(r, "put")) { /* value: key=value */
        const uint8_t *eq = memchr(r->value, '=', (size_t)r->value_len);
        int32_t kl = (int32_t)(eq - r->value);
        return sluice_put(store, r->value, kl, eq + 1, r->value_len - kl - 1) != 0;
    }
    if (is(r, "del")) return sluice_delete(store, r->value, r->value_len) != 0;
    if (is(r, "get")) { /* a 2-byte buffer first, then the needed size */
        uint8_t small[2];
        int32_t got = sluice_get(store, r->value, r->value_len, small, sizeof small);
        if (got == SLUICE_ERR_NOT_FOUND) return sluice_emit(out, "get", 3, NULL, -1);
        if (got < 0) return 1;
        if (got <= 2) return sluice_emit(out, "get", 3, small, got);
        static uint8_t big[1 << 16];
        if (got > (int32_t)sizeof big) return 1;
        int32_t again = sluice_get(store, r->value, r->value_len, big, got);
        if (again != got) return 1;
        return sluice_emit(out, "get", 3, big, got);
    }
    if (is(r, "scan")) { /* value: the entry to stop at, or empty */
        scan_ctx c = {out, 0, 0};
        for (int32_t i = 0; i < r->value_len; i++) c.stop_at = c.stop_at * 10 + (r->value[i] - '0');
        int32_t rc = sluice_scan(store, "", 0, NULL, 0, on_entry, &c);
        int len = snprintf(buf, sizeof buf, "%d %d", (int)rc, c.count);
        return sluice_emit(out, "scanned", 7, buf, len);
    }
    if (is(r, "range")) {
        scan_ctx c = {out, 0, 0};
        return sluice_scan(store, "b", 1, "d", 1, on_entry, &c) != 0;
    }
    if (is(r, "st")) { /* the record's stream time, then the batch's */
        int len = snprintf(buf, sizeof buf, "%lld %lld", (long long)r->stream_time, (long long)sluice_stream_time());
        return sluice_emit(out, "st", 2, buf, len);
    }
    if (is(r, "tk")) { /* value: a decimal timestamp; emits its time key in hex and decoded */
        char num[32];
        int32_t nl = r->value_len < 31 ? r->value_len : 31;
        memcpy(num, r->value, (size_t)nl);
        num[nl] = 0;
        int64_t ts = strtoll(num, NULL, 10);
        uint8_t k[8];
        sluice_time_key(k, ts);
        int len = 0;
        for (int i = 0; i < 8; i++) len += snprintf(buf + len, sizeof buf - (size_t)len, "%02x", k[i]);
        len += snprintf(buf + len, sizeof buf - (size_t)len, " %lld", (long long)sluice_time_key_decode(k));
        return sluice_emit(out, "tk", 2, buf, len);
    }
    if (is(r, "tput") || is(r, "tget")) { /* on table "t": put value=value, or get value */
        int32_t t = sluice_store_open("t");
        if (t < 0) return sluice_emit(out, "t", 1, "no table", 8);
        if (is(r, "tput")) {
            int len = snprintf(buf, sizeof buf, "%d", (int)sluice_put(t, r->value, r->value_len, r->value, r->value_len));
            return sluice_emit(out, "tput", 4, buf, len);
        }
        int32_t got = sluice_get(t, r->value, r->value_len, buf, sizeof buf);
        if (got == SLUICE_ERR_NOT_FOUND) return sluice_emit(out, "tget", 4, NULL, -1);
        if (got < 0 || got > (int32_t)sizeof buf) return 1;
        return sluice_emit(out, "tget", 4, buf, got);
    }
    if (is(r, "fwd")) return sluice_forward(out, r);
    if (is(r, "hdr")) {
        sluice_header h;
        for (uint32_t i = 0; i < r->header_count; i++) {
            if (sluice_record_header(r, i, &h) != 0) return 1;
            if (sluice_emit_to(out, 0, 3, 1234, h.key, h.key_len, h.value, h.value_len) != 0) return 1;
        }
        return sluice_record_header(r, r->header_count, &h) == SLUICE_ERR_INVALID ? 0 : 1;
    }
    if (is(r, "badout")) return sluice_emit_to(out, 5, SLUICE_PARTITION_BY_KEY, SLUICE_TIMESTAMP_INHERIT, "x", 1, "y", 1);
    if (is(r, "meta")) {
        int len = snprintf(buf, sizeof buf, "%lld %lld %u %d %u %d", (long long)r->offset, (long long)r->timestamp,
                           r->input, (int)r->partition, r->index, batch_starts);
        return sluice_emit(out, r->value, r->value_len, buf, len);
    }
    return sluice_emit(out, r->key, r->key_len, r->value, r->value_len);
}

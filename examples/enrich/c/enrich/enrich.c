/*
 * enrich is the enrich example's operator in C: a stream-table join. It
 * reads clicks keyed by user id (input 0) and looks each click's user up in
 * the read-only table "profiles" (the compacted topic profiles, which the
 * host keeps per partition and updates between calls, in timestamp order
 * with the clicks). For each click it emits to output 0, with the click's
 * key and timestamp, the value
 *
 *     {"click":<the click's value>,"profile":<the user's profile, or null>}
 *
 * with both values copied byte for byte (a null click value is written
 * null). A click with a null key has no user: its profile is null. It makes
 * the same outputs as the Go version (examples/enrich/go/enrich).
 *
 * Build with `sluice build examples/enrich/c/enrich`.
 */
#include <stdlib.h>
#include <string.h>

#include "sluice.h"

static int32_t profiles = -1;

/* The profile being read, and the output value being built; both grow. */
static uint8_t *pbuf, *obuf;
static int32_t pcap, ocap;

int sluice_on_init(const sluice_params *p) {
    (void)p;
    profiles = sluice_store_open("profiles");
    if (profiles < 0) {
        sluice_failf("enrich: table \"profiles\": %s (declare it under tables: in the job file)",
                     sluice_code_name(profiles));
        return 1;
    }
    return 0;
}

static int reserve(uint8_t **b, int32_t *cap, int64_t n) {
    if (n <= *cap) return 1;
    if (n > INT32_MAX) return 0;
    int64_t c = *cap ? *cap : 1024;
    while (c < n) c *= 2;
    if (c > INT32_MAX) c = INT32_MAX;
    uint8_t *nb = realloc(*b, (size_t)c);
    if (nb == NULL) return 0;
    *b = nb;
    *cap = (int32_t)c;
    return 1;
}

/* Reads the profile of key into pbuf; returns its length, -1 if none, or
 * -2 after failing the record. */
static int32_t profile(const uint8_t *key, int32_t key_len) {
    for (int tries = 0; tries < 3; tries++) {
        int32_t n = sluice_get(profiles, key, key_len, pbuf, pcap);
        if (n == SLUICE_ERR_NOT_FOUND) return -1;
        if (n < 0) {
            sluice_failf("sluice: store \"profiles\": get: %s", sluice_code_name(n));
            return -2;
        }
        if (n <= pcap) return n;
        if (!reserve(&pbuf, &pcap, n)) {
            sluice_fail("enrich: out of memory");
            return -2;
        }
    }
    sluice_fail("sluice: store \"profiles\": get: the value kept changing size");
    return -2;
}

static int32_t put(int32_t at, const void *b, int32_t n) {
    memcpy(obuf + at, b, (size_t)n);
    return at + n;
}

int sluice_handle(const sluice_record *r, sluice_emitter *out) {
    int32_t plen = -1;
    if (r->key_len >= 0) {
        plen = profile(r->key, r->key_len);
        if (plen == -2) return 1;
    }
    static const char click[] = "{\"click\":", prof[] = ",\"profile\":", null[] = "null";
    int32_t clen = r->value_len < 0 ? 4 : r->value_len;
    int64_t n = (int64_t)sizeof click - 1 + clen + (int64_t)sizeof prof - 1 + (plen < 0 ? 4 : plen) + 1;
    if (!reserve(&obuf, &ocap, n)) {
        sluice_fail("enrich: out of memory");
        return 1;
    }
    int32_t at = put(0, click, sizeof click - 1);
    at = r->value_len < 0 ? put(at, null, 4) : put(at, r->value, r->value_len);
    at = put(at, prof, sizeof prof - 1);
    at = plen < 0 ? put(at, null, 4) : put(at, pbuf, plen);
    at = put(at, "}", 1);
    int32_t rc = sluice_emit(out, r->key, r->key_len, obuf, at);
    if (rc != SLUICE_OK) {
        sluice_failf("emit: %s", sluice_code_name(rc));
        return 1;
    }
    return 0;
}

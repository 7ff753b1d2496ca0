/*
 * split is the first operator of the word count example, in C: for each
 * record of the input topic (one sentence per record value) it emits one
 * record per word to output 0, with the word as both key and value,
 * partitioned by key. It makes the same outputs as the Go version
 * (examples/wordcount/go/split).
 *
 * A word is a maximal run of bytes that are not ASCII whitespace, the six
 * bytes ' ', '\t', '\n', '\v', '\f' and '\r'. Case is kept and nothing else
 * is stripped.
 *
 * Build with `sluice build examples/wordcount/c/split`.
 */
#include "sluice.h"

static int is_space(uint8_t b) {
    return b == ' ' || b == '\t' || b == '\n' || b == '\v' || b == '\f' || b == '\r';
}

int sluice_handle(const sluice_record *r, sluice_emitter *out) {
    const uint8_t *text = r->value;
    int32_t n = r->value_len; /* -1 (null) holds no words */
    int32_t i = 0;
    while (i < n) {
        while (i < n && is_space(text[i])) i++;
        int32_t j = i;
        while (j < n && !is_space(text[j])) j++;
        if (j > i) {
            int32_t rc = sluice_emit(out, text + i, j - i, text + i, j - i);
            if (rc != SLUICE_OK) {
                sluice_failf("emit: %s", sluice_code_name(rc));
                return 1;
            }
        }
        i = j;
    }
    return 0;
}

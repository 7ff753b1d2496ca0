/*
 * passthrough is the operator of the pass-through benchmark job, in C: it
 * writes every input record to output 0 unchanged (key, value, headers and
 * timestamp), partitioned by key, as the Go version
 * (examples/passthrough/go/passthrough) does, byte for byte. It does no
 * work of its own, so the job measures the host and the SDK's decoding and
 * output buffering.
 *
 * Build with `sluice build examples/passthrough/c/passthrough`.
 */
#include "sluice.h"

int sluice_handle(const sluice_record *r, sluice_emitter *out) {
    int32_t rc = sluice_forward(out, r);
    if (rc != SLUICE_OK) {
        /* Out of memory for the batch's outputs: fail it with the reason. */
        sluice_failf("forward: %s", sluice_code_name(rc));
        return 1;
    }
    return 0;
}

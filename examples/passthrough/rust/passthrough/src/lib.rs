//! passthrough is the operator of the pass-through benchmark job, in Rust:
//! it writes every input record to output 0 unchanged (key, value, headers
//! and timestamp), partitioned by key, as the Go version
//! (examples/passthrough/go/passthrough) does, byte for byte. It does no
//! work of its own, so the job measures the host and the SDK's decoding
//! and output buffering.
//!
//! Build with `sluice build examples/passthrough/rust/passthrough`.

use sluice::{Emitter, Operator, Record};

struct PassThrough;

impl Operator for PassThrough {
    fn handle(&mut self, r: &Record, out: &mut Emitter) -> Result<(), String> {
        out.forward(r);
        Ok(())
    }
}

sluice::export_operator!(PassThrough);

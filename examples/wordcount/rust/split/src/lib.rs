//! split is the first operator of the word count example, in Rust: for
//! each record of the input topic (one sentence per record value) it emits
//! one record per word to output 0, with the word as both key and value,
//! partitioned by key. It makes the same outputs as the Go version
//! (examples/wordcount/go/split).
//!
//! A word is a maximal run of bytes that are not ASCII whitespace, the six
//! bytes ' ', '\t', '\n', '\v', '\f' and '\r'. Case is kept and nothing
//! else is stripped.
//!
//! Build with `sluice build examples/wordcount/rust/split`.

use sluice::{Emitter, Operator, Record};

struct Split;

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

impl Operator for Split {
    fn handle(&mut self, r: &Record, out: &mut Emitter) -> Result<(), String> {
        // A null value holds no words.
        let text = r.value.unwrap_or(&[]);
        for word in text.split(|&b| is_space(b)).filter(|w| !w.is_empty()) {
            out.emit(Some(word), Some(word));
        }
        Ok(())
    }
}

sluice::export_operator!(Split);

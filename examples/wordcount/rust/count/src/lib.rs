//! count is the second operator of the word count example, in Rust: it
//! reads records keyed by word, keeps each word's running count in the
//! state store "counts" (key = the word, value = the count as decimal
//! ASCII), and emits to output 0 records with key = the word and value =
//! its new count as decimal ASCII. It makes the same outputs and state as
//! the Go version (examples/wordcount/go/count).
//!
//! Counts are updated and emitted once per word per batch, after the
//! batch's last record, in the order the words first appear in the batch.
//! Each word's stored count is read once per batch, at its first record; a
//! stored value that is not a decimal integer fails that record. Records
//! with a null key carry no word and are ignored.
//!
//! Build with `sluice build examples/wordcount/rust/count`.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use sluice::{Emitter, Operator, Record, Store};

/// FNV-1a: words are short, and SipHash (std's default) costs more than
/// the rest of counting them.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn write(&mut self, bytes: &[u8]) {
        let mut h = self.0;
        for &b in bytes {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A word's count during a batch.
struct Tally {
    word: Vec<u8>,
    /// int64 arithmetic that wraps as Go's.
    total: i64,
    /// The batch in which total was last read from the store.
    batch: u64,
}

/// Tallies outlive batches, so that a word seen before costs no
/// allocation; MAX_TALLIES bounds them.
const MAX_TALLIES: usize = 1 << 20;

struct Count {
    store: Option<Store>,
    tallies: Vec<Tally>,
    /// A word's index in tallies.
    index: HashMap<Vec<u8>, usize, BuildHasherDefault<Fnv>>,
    /// The batch's words (indexes in tallies) in order of first appearance.
    order: Vec<usize>,
    batch: u64,
    /// Reused for reading stored counts.
    scratch: Vec<u8>,
}

/// Parses a count as the Go SDK's Int64 codec does: an optional '-' and 1
/// to 19 decimal digits, in int64 range.
fn decode(b: &[u8]) -> Option<i64> {
    let (neg, digits) = match b.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, b),
    };
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let v = digits.iter().fold(0u64, |v, &d| v * 10 + (d - b'0') as u64);
    if neg {
        if v > 1u64 << 63 {
            return None;
        }
        Some(0u64.wrapping_sub(v) as i64)
    } else {
        i64::try_from(v).ok()
    }
}

/// Quotes bytes for an error message, roughly as Go's %q.
fn quoted(b: &[u8]) -> String {
    let esc: Vec<u8> = b.iter().flat_map(|&c| std::ascii::escape_default(c)).collect();
    format!("\"{}\"", String::from_utf8_lossy(&esc))
}

impl Count {
    fn new() -> Count {
        Count {
            store: None,
            tallies: Vec::new(),
            index: HashMap::default(),
            order: Vec::new(),
            batch: 0,
            scratch: Vec::new(),
        }
    }

    fn store(&mut self) -> Result<Store, String> {
        if let Some(s) = self.store {
            return Ok(s);
        }
        let s = Store::open("counts").map_err(|e| format!("sluice: store \"counts\": open: {}", e))?;
        self.store = Some(s);
        Ok(s)
    }

    /// The stored count of a word (0 if absent).
    fn stored_count(&mut self, word: &[u8]) -> Result<i64, String> {
        let store = self.store()?;
        let found = store
            .get_into(word, &mut self.scratch)
            .map_err(|e| format!("sluice: store \"counts\": get: {}", e))?;
        if !found {
            return Ok(0);
        }
        decode(&self.scratch).ok_or_else(|| {
            format!(
                "sluice: store \"counts\": decoding the value of {}: {}: not a decimal integer",
                quoted(word),
                quoted(&self.scratch)
            )
        })
    }
}

impl Operator for Count {
    fn batch_start(&mut self) {
        self.batch += 1;
        self.order.clear();
        if self.tallies.len() > MAX_TALLIES {
            self.tallies.clear();
            self.index.clear();
        }
    }

    fn handle(&mut self, r: &Record, _out: &mut Emitter) -> Result<(), String> {
        let word = match r.key {
            Some(w) => w,
            None => return Ok(()), // null key: no word
        };
        let slot = self.index.get(word).copied();
        if let Some(i) = slot {
            let t = &mut self.tallies[i];
            if t.batch == self.batch {
                t.total = t.total.wrapping_add(1);
                return Ok(());
            }
        }
        // The word's first record in this batch: start from its stored
        // count. A count that does not decode fails this record.
        let n = self.stored_count(word)?;
        let i = match slot {
            Some(i) => i,
            None => {
                self.index.insert(word.to_vec(), self.tallies.len());
                self.tallies.push(Tally { word: word.to_vec(), total: 0, batch: 0 });
                self.tallies.len() - 1
            }
        };
        let t = &mut self.tallies[i];
        t.total = n.wrapping_add(1);
        t.batch = self.batch;
        self.order.push(i);
        Ok(())
    }

    fn batch_end(&mut self, out: &mut Emitter) -> Result<(), String> {
        if self.order.is_empty() {
            return Ok(());
        }
        let store = self.store()?;
        for &i in &self.order {
            let t = &self.tallies[i];
            let v = t.total.to_string();
            store
                .put(&t.word, v.as_bytes())
                .map_err(|e| format!("sluice: store \"counts\": put: {}", e))?;
            out.emit(Some(&t.word), Some(v.as_bytes()));
        }
        Ok(())
    }
}

sluice::export_operator!(Count::new());

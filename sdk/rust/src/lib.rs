//! The sluice Rust SDK: write sluice stream-processing operators in Rust,
//! compiled to a WebAssembly WASI reactor that speaks ABI v1
//! (`abi/SPEC.md`).
//!
//! An operator is a type implementing [`Operator`], exported with
//! [`export_operator!`]:
//!
//! ```ignore
//! use sluice::{Emitter, Operator, Record};
//!
//! struct Upper;
//!
//! impl Operator for Upper {
//!     fn handle(&mut self, r: &Record, out: &mut Emitter) -> Result<(), String> {
//!         let v = r.value.map(|v| v.to_ascii_uppercase());
//!         out.emit(r.key, v.as_deref());
//!         Ok(())
//!     }
//! }
//!
//! sluice::export_operator!(Upper);
//! ```
//!
//! The macro defines the module's exports `sluice_alloc`, `sluice_init` and
//! `sluice_process`; this crate implements the `sluice_v1` imports, batch
//! decoding (bounds-checked: a malformed batch is logged and fails the
//! task), output buffering (ONE `emit` host call per batch), state stores,
//! parameters and error reporting.
//!
//! Build with `sluice build DIR` (see README.md): the toolchain is rustc
//! with the `wasm32-wasi` standard library (Debian: `apt-get install rustc
//! libstd-rust-dev-wasm32`).
//!
//! Panics: `wasm32-wasi` has no unwinding, so a panic prints its message to
//! stderr (the task's log) and traps the instance. The host then isolates
//! the record at fault by re-running the batch in halves on new instances
//! and applies the job's error policy to it. Return `Err` to fail a record
//! cheaply; keep panics for bugs.
//!
//! An instance is single-threaded; nothing here is thread-safe, and the
//! types are deliberately neither `Send` nor `Sync` where it matters.

#![warn(missing_docs)]

use std::fmt;

mod params;
pub use params::Params;

// ---- sluice_v1 imports ----

#[cfg(target_arch = "wasm32")]
mod host {
    #[link(wasm_import_module = "sluice_v1")]
    extern "C" {
        pub fn check_abi_version_1();
        pub fn emit(ptr: *const u8, len: i32) -> i32;
        pub fn store_open(ptr: *const u8, len: i32) -> i32;
        pub fn state_get(store: i32, key: *const u8, klen: i32, val: *mut u8, cap: i32) -> i32;
        pub fn state_put(store: i32, key: *const u8, klen: i32, val: *const u8, vlen: i32) -> i32;
        pub fn state_delete(store: i32, key: *const u8, klen: i32) -> i32;
        pub fn state_scan(
            store: i32,
            start: *const u8,
            slen: i32,
            end: *const u8,
            elen: i32,
            buf: *mut u8,
            cap: i32,
        ) -> i32;
        pub fn log(level: i32, ptr: *const u8, len: i32);
        pub fn set_error(index: i32, ptr: *const u8, len: i32);
        pub fn stream_time(out: *mut i64) -> i32;
    }
}

/// Stand-ins for the host functions outside WebAssembly, so that the crate
/// (and operators) compile and unit-test natively: every call fails with
/// [`Code::Internal`], logs go to stderr.
#[cfg(not(target_arch = "wasm32"))]
#[allow(clippy::missing_safety_doc)]
mod host {
    pub unsafe fn check_abi_version_1() {}
    pub unsafe fn emit(_: *const u8, _: i32) -> i32 {
        -8
    }
    pub unsafe fn store_open(_: *const u8, _: i32) -> i32 {
        -8
    }
    pub unsafe fn state_get(_: i32, _: *const u8, _: i32, _: *mut u8, _: i32) -> i32 {
        -8
    }
    pub unsafe fn state_put(_: i32, _: *const u8, _: i32, _: *const u8, _: i32) -> i32 {
        -8
    }
    pub unsafe fn state_delete(_: i32, _: *const u8, _: i32) -> i32 {
        -8
    }
    pub unsafe fn state_scan(
        _: i32,
        _: *const u8,
        _: i32,
        _: *const u8,
        _: i32,
        _: *mut u8,
        _: i32,
    ) -> i32 {
        -8
    }
    pub unsafe fn log(level: i32, ptr: *const u8, len: i32) {
        let b = std::slice::from_raw_parts(ptr, len as usize);
        eprintln!("sluice log {}: {}", level, String::from_utf8_lossy(b));
    }
    pub unsafe fn set_error(index: i32, ptr: *const u8, len: i32) {
        let b = std::slice::from_raw_parts(ptr, len as usize);
        eprintln!("sluice set_error {}: {}", index, String::from_utf8_lossy(b));
    }
    pub unsafe fn stream_time(_: *mut i64) -> i32 {
        -8
    }
}

// ---- Stream time and time keys (abi/SPEC.md 12) ----

/// The task's stream time at the start of the current batch (in `init`:
/// as of the instance's start): the largest timestamp ≥ 0 of the stream
/// records handed to the operator before, or -1 if none. Never the wall
/// clock. A record's own stream time is [`Record::stream_time`].
pub fn stream_time() -> i64 {
    let mut st: i64 = -1;
    // SAFETY: st is 8 writable bytes.
    if unsafe { host::stream_time(&mut st) } != 0 {
        return -1;
    }
    st
}

/// The 8-byte time key of `ts` (milliseconds): big-endian
/// `(ts as u64) ^ 1 << 63`, whose byte order is timestamp order, negative
/// timestamps included. Key windowed state by time key ++ id, and expire
/// it by scanning `[time_key(i64::MIN), time_key(cutoff))` and deleting.
pub fn time_key(ts: i64) -> [u8; 8] {
    ((ts as u64) ^ (1 << 63)).to_be_bytes()
}

/// The timestamp of the time key at the start of `b`, or `None` if `b` is
/// shorter than 8 bytes.
pub fn time_key_decode(b: &[u8]) -> Option<i64> {
    let k: [u8; 8] = b.get(..8)?.try_into().ok()?;
    Some((u64::from_be_bytes(k) ^ (1 << 63)) as i64)
}

// ---- Layouts and limits (abi/SPEC.md 5 and 10) ----

const BATCH_HEADER_SIZE: usize = 16;
const RECORD_FIXED_SIZE: usize = 32;
const HEADER_FIXED_SIZE: usize = 8;
const OUTPUT_FIXED_SIZE: usize = 28;
const SCAN_ENTRY_FIXED_SIZE: usize = 8;
const INITIAL_SCAN_BUF: usize = 16 << 10;

/// The longest error message the host keeps (longer ones are truncated).
pub const MAX_ERROR_MESSAGE: usize = 4096;
/// The longest log message the host keeps (longer ones are truncated).
pub const MAX_LOG_MESSAGE: usize = 16384;
/// The longest key a store accepts.
pub const MAX_KEY_SIZE: usize = 64 << 10;
/// The longest value a store accepts.
pub const MAX_VALUE_SIZE: usize = 8 << 20;

const STATUS_OK: i32 = 0;
const STATUS_RECORD_FAILED: i32 = 1;
const STATUS_BROKEN: i32 = 2;

/// Partition an output by key (murmur2 of the key, as a Kafka producer).
pub const PARTITION_BY_KEY: i32 = -1;
/// Let the host give an output the timestamp of the batch's last record.
pub const TIMESTAMP_INHERIT: i64 = -1;

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn le64(b: &[u8], at: usize) -> u64 {
    le32(b, at) as u64 | (le32(b, at + 4) as u64) << 32
}

fn len_of(b: Option<&[u8]>) -> i32 {
    match b {
        Some(b) => b.len() as i32,
        None => -1,
    }
}

fn truncate(msg: &str, max: usize) -> &[u8] {
    let b = msg.as_bytes();
    &b[..b.len().min(max)]
}

// ---- Codes ----

/// A return code of a host function (abi/SPEC.md 8.1), or of the SDK.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    /// `state_get`: no value for the key (stores return `Ok(None)` instead).
    NotFound,
    /// Reserved by the ABI.
    Malformed,
    /// Unknown store name or handle.
    BadStore,
    /// An emitted record names an unknown output or partition.
    BadOutput,
    /// `state_scan`: the first entry does not fit (handled by [`Store::scan`]).
    BufferTooSmall,
    /// A key over 64 KiB or a value over 8 MiB.
    Limit,
    /// Not callable now (e.g. [`Store::put`] from [`Operator::init`]).
    NotAllowed,
    /// The host failed: return promptly.
    Internal,
    /// SDK: a bad argument (e.g. a byte string longer than 2 GiB).
    Invalid,
    /// SDK: the host's answer made no sense.
    Host,
    /// A negative code this SDK does not know.
    Unknown(i32),
}

impl Code {
    /// The code for a negative host result.
    pub fn from_raw(code: i32) -> Code {
        match code {
            -1 => Code::NotFound,
            -2 => Code::Malformed,
            -3 => Code::BadStore,
            -4 => Code::BadOutput,
            -5 => Code::BufferTooSmall,
            -6 => Code::Limit,
            -7 => Code::NotAllowed,
            -8 => Code::Internal,
            -101 => Code::Invalid,
            -102 => Code::Host,
            n => Code::Unknown(n),
        }
    }

    /// The code's number (as the C SDK's SLUICE_ERR_*).
    pub fn raw(self) -> i32 {
        match self {
            Code::NotFound => -1,
            Code::Malformed => -2,
            Code::BadStore => -3,
            Code::BadOutput => -4,
            Code::BufferTooSmall => -5,
            Code::Limit => -6,
            Code::NotAllowed => -7,
            Code::Internal => -8,
            Code::Invalid => -101,
            Code::Host => -102,
            Code::Unknown(n) => n,
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Code::NotFound => "not found",
            Code::Malformed => "malformed",
            Code::BadStore => "unknown store",
            Code::BadOutput => "unknown output or partition",
            Code::BufferTooSmall => "buffer too small",
            Code::Limit => "key or value too large",
            Code::NotAllowed => "not allowed now",
            Code::Internal => "host internal error",
            Code::Invalid => "invalid argument",
            Code::Host => "unexpected answer from the host",
            Code::Unknown(n) => return write!(f, "unknown error code {}", n),
        };
        f.write_str(s)
    }
}

impl std::error::Error for Code {}

impl From<Code> for String {
    fn from(c: Code) -> String {
        c.to_string()
    }
}

fn check(code: i32) -> Result<(), Code> {
    if code == 0 {
        Ok(())
    } else if code < 0 {
        Err(Code::from_raw(code))
    } else {
        Err(Code::Host)
    }
}

// ---- Logging ----

/// Log level debug (log/slog's).
pub const LEVEL_DEBUG: i32 = -4;
/// Log level info.
pub const LEVEL_INFO: i32 = 0;
/// Log level warn.
pub const LEVEL_WARN: i32 = 4;
/// Log level error.
pub const LEVEL_ERROR: i32 = 8;

/// Writes msg to the task's log at level (one of the `LEVEL_*`; other
/// values are kept as given). Long messages are truncated to 16 KiB.
pub fn log(level: i32, msg: &str) {
    let b = truncate(msg, MAX_LOG_MESSAGE);
    unsafe { host::log(level, b.as_ptr(), b.len() as i32) }
}

// ---- Records ----

/// A record header. Keys are never null.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    /// The header's key.
    pub key: &'a [u8],
    /// The header's value; `None` is null.
    pub value: Option<&'a [u8]>,
}

/// An input record. Its byte strings point into the batch, which the host
/// overwrites with the next one: copy what you keep.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// Offset in its input partition.
    pub offset: i64,
    /// Milliseconds since the Unix epoch, -1 if none.
    pub timestamp: i64,
    /// The task's stream time at this record (abi/SPEC.md 12.1): the
    /// largest timestamp ≥ 0 of the stream records handed to the operator
    /// up to and including this one, -1 if none. The SDK computes it as the
    /// max of [`stream_time`] at the batch's start and the batch's
    /// timestamps so far, so it does not depend on how the host cuts
    /// batches.
    pub stream_time: i64,
    /// Index of its topic in the job's inputs.
    pub input: u32,
    /// The input partition (the task's number).
    pub partition: i32,
    /// 0-based index of the record in its batch.
    pub index: u32,
    /// The key; `None` is null, `Some(b"")` empty.
    pub key: Option<&'a [u8]>,
    /// The value; `None` is null, `Some(b"")` empty.
    pub value: Option<&'a [u8]>,
    header_count: u32,
    headers: &'a [u8],
}

impl<'a> Record<'a> {
    /// The record's headers, in order.
    pub fn headers(&self) -> Headers<'a> {
        Headers { left: self.header_count, rest: self.headers }
    }

    /// How many headers the record has.
    pub fn header_count(&self) -> usize {
        self.header_count as usize
    }
}

/// An iterator over a record's headers (validated when the batch was
/// decoded).
#[derive(Debug, Clone)]
pub struct Headers<'a> {
    left: u32,
    rest: &'a [u8],
}

impl<'a> Iterator for Headers<'a> {
    type Item = Header<'a>;

    fn next(&mut self) -> Option<Header<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let mut c = Cursor { b: self.rest, at: 0 };
        let h = c.header()?;
        self.rest = &self.rest[c.at..];
        Some(h)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left as usize, Some(self.left as usize))
    }
}

/// A bounds-checked reader of a batch.
struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn left(&self) -> usize {
        self.b.len() - self.at
    }

    fn take(&mut self, len: i32) -> Option<Option<&'a [u8]>> {
        if len == -1 {
            return Some(None);
        }
        if len < 0 || len as usize > self.left() {
            return None;
        }
        let s = &self.b[self.at..self.at + len as usize];
        self.at += len as usize;
        Some(Some(s))
    }

    fn header(&mut self) -> Option<Header<'a>> {
        if self.left() < HEADER_FIXED_SIZE {
            return None;
        }
        let kl = le32(self.b, self.at) as i32;
        let vl = le32(self.b, self.at + 4) as i32;
        self.at += HEADER_FIXED_SIZE;
        if kl < 0 {
            return None;
        }
        let key = self.take(kl)??;
        let value = self.take(vl)?;
        Some(Header { key, value })
    }
}

// ---- Outputs ----

/// Collects a batch's outputs. They go to the host in one `emit` call after
/// the batch's last record (and [`Operator::batch_end`]), only if no record
/// failed.
pub struct Emitter {
    buf: Vec<u8>,
    marks: Vec<usize>,
    timestamp: i64,
    error: Option<Code>,
}

impl Emitter {
    const fn new() -> Emitter {
        Emitter { buf: Vec::new(), marks: Vec::new(), timestamp: TIMESTAMP_INHERIT, error: None }
    }

    fn reset(&mut self) {
        self.buf.clear();
        self.marks.clear();
        self.error = None;
    }

    /// Emits key/value to output 0, partitioned by key, with the timestamp
    /// of the record being handled (in [`Operator::batch_end`]: of the
    /// batch's last record), as the Go SDK's Emit.
    pub fn emit(&mut self, key: Option<&[u8]>, value: Option<&[u8]>) {
        let ts = self.timestamp;
        self.emit_to(0, PARTITION_BY_KEY, ts, key, value, &[]);
    }

    /// Emits to the job's output at index `output` (its place in the
    /// outputs list), to `partition` (or [`PARTITION_BY_KEY`]) with
    /// timestamp `timestamp` in ms (or [`TIMESTAMP_INHERIT`]). An output or
    /// partition the job does not have fails the record that emitted it
    /// (found after the batch). A partition below -1 or a byte string over
    /// 2 GiB fails the whole batch (status 2) with a log message.
    pub fn emit_to(
        &mut self,
        output: u32,
        partition: i32,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[Header],
    ) {
        if partition < -1 {
            self.error = Some(Code::Invalid);
            return;
        }
        let mut need = OUTPUT_FIXED_SIZE + key.map_or(0, |k| k.len()) + value.map_or(0, |v| v.len());
        for h in headers {
            need += HEADER_FIXED_SIZE + h.key.len() + h.value.map_or(0, |v| v.len());
        }
        let too_long = |b: Option<&[u8]>| b.map_or(false, |b| b.len() > i32::MAX as usize);
        if need > i32::MAX as usize
            || too_long(key)
            || too_long(value)
            || headers.iter().any(|h| too_long(Some(h.key)) || too_long(h.value))
        {
            self.error = Some(Code::Invalid);
            return;
        }
        let b = &mut self.buf;
        b.reserve(need);
        b.extend_from_slice(&output.to_le_bytes());
        b.extend_from_slice(&partition.to_le_bytes());
        b.extend_from_slice(&timestamp.to_le_bytes());
        b.extend_from_slice(&len_of(key).to_le_bytes());
        b.extend_from_slice(&len_of(value).to_le_bytes());
        b.extend_from_slice(&(headers.len() as u32).to_le_bytes());
        b.extend_from_slice(key.unwrap_or(&[]));
        b.extend_from_slice(value.unwrap_or(&[]));
        for h in headers {
            b.extend_from_slice(&(h.key.len() as i32).to_le_bytes());
            b.extend_from_slice(&len_of(h.value).to_le_bytes());
            b.extend_from_slice(h.key);
            b.extend_from_slice(h.value.unwrap_or(&[]));
        }
    }

    /// Re-emits r unchanged (key, value, headers, timestamp) to output 0,
    /// by key.
    pub fn forward(&mut self, r: &Record) {
        let hs: Vec<Header> = r.headers().collect();
        self.emit_to(0, PARTITION_BY_KEY, r.timestamp, r.key, r.value, &hs);
    }

    /// Hands the batch's outputs to the host in one emit call. When the
    /// host refuses them (an unknown output or partition), it re-emits
    /// them one at a time to find the record responsible and fails that
    /// record, as the Go and C SDKs do; the host discards the call's
    /// effects, so the repeats do no harm. Outputs of batch_end are traced
    /// to the batch's last record.
    fn flush(&mut self) -> i32 {
        if self.buf.is_empty() {
            return STATUS_OK;
        }
        let code = unsafe { host::emit(self.buf.as_ptr(), self.buf.len() as i32) };
        if code == 0 {
            return STATUS_OK;
        }
        if code == Code::BadOutput.raw() {
            for i in 0..self.marks.len() {
                let mut off = self.marks[i];
                let end = if i + 1 < self.marks.len() { self.marks[i + 1] } else { self.buf.len() };
                while off < end {
                    let n = output_size(&self.buf[off..]);
                    let rc = unsafe { host::emit(self.buf[off..].as_ptr(), n as i32) };
                    if rc != 0 {
                        let part = le32(&self.buf, off + 4) as i32;
                        let part = if part == PARTITION_BY_KEY { "by key".to_string() } else { part.to_string() };
                        let msg = format!(
                            "emit to output {}, partition {}: {}",
                            le32(&self.buf, off),
                            part,
                            Code::BadOutput
                        );
                        set_error(i as i32, &msg);
                        return STATUS_RECORD_FAILED;
                    }
                    off += n;
                }
            }
        }
        log(
            LEVEL_ERROR,
            &format!("sluice: emit of {} bytes of outputs failed: {} ({})", self.buf.len(), Code::from_raw(code), code),
        );
        STATUS_BROKEN
    }
}

/// The size of the (well-formed, our own) output at the start of b.
fn output_size(b: &[u8]) -> usize {
    let kl = le32(b, 16) as i32;
    let vl = le32(b, 20) as i32;
    let n = le32(b, 24);
    let mut size = OUTPUT_FIXED_SIZE + kl.max(0) as usize + vl.max(0) as usize;
    for _ in 0..n {
        let hk = le32(b, size) as i32;
        let hv = le32(b, size + 4) as i32;
        size += HEADER_FIXED_SIZE + hk.max(0) as usize + hv.max(0) as usize;
    }
    size
}

fn set_error(index: i32, msg: &str) {
    let b = truncate(msg, MAX_ERROR_MESSAGE);
    unsafe { host::set_error(index, b.as_ptr(), b.len() as i32) }
}

// ---- State stores ----

/// A state store declared under `stores:` in the job file. Handles stay
/// valid for the instance's life: open once (in [`Operator::init`] or
/// lazily).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Store {
    handle: i32,
}

fn bytes_len(b: &[u8]) -> Result<i32, Code> {
    if b.len() > i32::MAX as usize {
        Err(Code::Invalid)
    } else {
        Ok(b.len() as i32)
    }
}

impl Store {
    /// Resolves a store name to a handle; [`Code::BadStore`] if the job has
    /// no such store.
    pub fn open(name: &str) -> Result<Store, Code> {
        let n = bytes_len(name.as_bytes())?;
        let h = unsafe { host::store_open(name.as_ptr(), n) };
        if h < 0 {
            return Err(Code::from_raw(h));
        }
        Ok(Store { handle: h })
    }

    /// The store's handle.
    pub fn handle(&self) -> i32 {
        self.handle
    }

    /// Looks key up: `Ok(None)` if absent. Writes of the current batch are
    /// seen (read-your-writes).
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Code> {
        let mut v = Vec::new();
        Ok(if self.get_into(key, &mut v)? { Some(v) } else { None })
    }

    /// Looks key up into buf, reusing its capacity: `Ok(true)` with the
    /// value in buf (replacing its contents), `Ok(false)` (buf emptied) if
    /// absent.
    pub fn get_into(&self, key: &[u8], buf: &mut Vec<u8>) -> Result<bool, Code> {
        let kl = bytes_len(key)?;
        buf.clear();
        if buf.capacity() < 64 {
            buf.reserve(64);
        }
        loop {
            let cap = buf.capacity().min(i32::MAX as usize);
            let n = unsafe { host::state_get(self.handle, key.as_ptr(), kl, buf.as_mut_ptr(), cap as i32) };
            if n == Code::NotFound.raw() {
                return Ok(false);
            }
            if n < 0 {
                return Err(Code::from_raw(n));
            }
            let n = n as usize;
            if n <= cap {
                // The host wrote n bytes at buf's start.
                unsafe { buf.set_len(n) };
                return Ok(true);
            }
            buf.reserve(n);
        }
    }

    /// Sets key to value (an empty value is a value, not a delete). Writes
    /// made while processing a batch are kept only if it succeeds;
    /// [`Code::NotAllowed`] from init.
    pub fn put(&self, key: &[u8], value: &[u8]) -> Result<(), Code> {
        let (kl, vl) = (bytes_len(key)?, bytes_len(value)?);
        check(unsafe { host::state_put(self.handle, key.as_ptr(), kl, value.as_ptr(), vl) })
    }

    /// Removes key (absent keys are fine).
    pub fn delete(&self, key: &[u8]) -> Result<(), Code> {
        let kl = bytes_len(key)?;
        check(unsafe { host::state_delete(self.handle, key.as_ptr(), kl) })
    }

    /// Calls f(key, value) for every entry with start <= key < end, in
    /// ascending byte-wise key order, until f returns false. An empty end
    /// means no upper bound; an empty start begins at the first key.
    /// Fetches a page at a time (16 KiB, grown when one entry needs more).
    /// Returns `Ok(true)` when every entry was seen, `Ok(false)` when f
    /// stopped the scan.
    pub fn scan<F>(&self, start: &[u8], end: &[u8], mut f: F) -> Result<bool, Code>
    where
        F: FnMut(&[u8], &[u8]) -> bool,
    {
        bytes_len(start)?;
        let el = bytes_len(end)?;
        let mut buf: Vec<u8> = vec![0; INITIAL_SCAN_BUF];
        // The start of the next page: the last key seen + 0x00.
        let mut next: Vec<u8> = start.to_vec();
        loop {
            let n = unsafe {
                host::state_scan(
                    self.handle,
                    next.as_ptr(),
                    next.len() as i32,
                    end.as_ptr(),
                    el,
                    buf.as_mut_ptr(),
                    buf.len() as i32,
                )
            };
            if n == 0 {
                return Ok(true);
            }
            if n == Code::BufferTooSmall.raw() {
                let need = le32(&buf, 0) as usize;
                if need <= buf.len() || need > i32::MAX as usize {
                    return Err(Code::Host);
                }
                buf.resize(need, 0);
                continue;
            }
            if n < 0 {
                return Err(Code::from_raw(n));
            }
            let page = buf.get(..n as usize).ok_or(Code::Host)?;
            let mut at = 0;
            let mut last: Option<(usize, usize)> = None;
            while at < page.len() {
                if page.len() - at < SCAN_ENTRY_FIXED_SIZE {
                    return Err(Code::Host);
                }
                let kl = le32(page, at) as usize;
                let vl = le32(page, at + 4) as usize;
                at += SCAN_ENTRY_FIXED_SIZE;
                if page.len() - at < kl || page.len() - at - kl < vl {
                    return Err(Code::Host);
                }
                let go_on = f(&page[at..at + kl], &page[at + kl..at + kl + vl]);
                last = Some((at, kl));
                at += kl + vl;
                if !go_on {
                    return Ok(false);
                }
            }
            match last {
                None => return Ok(true),
                Some((at, kl)) => {
                    next.clear();
                    next.extend_from_slice(&page[at..at + kl]);
                    next.push(0);
                }
            }
        }
    }
}

// ---- Operators ----

/// What an operator implements. One value lives per instance; the host
/// calls it from one thread, never concurrently.
pub trait Operator {
    /// Runs once, with the job's parameters, before any batch. `Err` fails
    /// the deploy or the task start with its message. Stores may be opened
    /// and read here; writes and emits are refused ([`Code::NotAllowed`]).
    fn init(&mut self, params: &Params) -> Result<(), String> {
        let _ = params;
        Ok(())
    }

    /// Runs before the first record of every batch, including a batch
    /// re-run after a failed record: reset per-batch scratch here.
    fn batch_start(&mut self) {}

    /// Handles one record, emitting through out. `Err` fails the record:
    /// the whole batch's outputs and state writes are discarded and the
    /// job's error policy applies, which may re-run the records before it
    /// (so keep per-batch effects in state, or reset them in batch_start).
    fn handle(&mut self, r: &Record, out: &mut Emitter) -> Result<(), String>;

    /// Runs after the last record of a batch in which no record failed,
    /// before the outputs go to the host: aggregate per batch in handle,
    /// then update state and emit here. `Err` fails the task (status 2; it
    /// restarts from its last checkpoint).
    fn batch_end(&mut self, out: &mut Emitter) -> Result<(), String> {
        let _ = out;
        Ok(())
    }
}

/// Defines the module's exports (`sluice_alloc`, `sluice_init`,
/// `sluice_process`) for an operator: the expression is evaluated once per
/// instance, when the host initializes it, and must give a value of a type
/// implementing [`Operator`]. Use it once, in the operator's crate root.
#[macro_export]
macro_rules! export_operator {
    ($op:expr) => {
        #[doc(hidden)]
        fn __sluice_new_operator() -> ::std::boxed::Box<dyn $crate::Operator> {
            ::std::boxed::Box::new($op)
        }

        #[doc(hidden)]
        #[no_mangle]
        pub extern "C" fn sluice_alloc(size: i32) -> i32 {
            $crate::__rt::alloc(size)
        }

        #[doc(hidden)]
        #[no_mangle]
        pub extern "C" fn sluice_init(ptr: i32, len: i32) -> i32 {
            unsafe { $crate::__rt::init(ptr, len, __sluice_new_operator) }
        }

        #[doc(hidden)]
        #[no_mangle]
        pub extern "C" fn sluice_process(ptr: i32, len: i32) -> i32 {
            unsafe { $crate::__rt::process(ptr, len, __sluice_new_operator) }
        }
    };
}

#[doc(hidden)]
pub mod __rt {
    //! The runtime behind [`export_operator!`]: not part of the API.
    use super::*;

    struct State {
        region: Vec<u8>,
        op: Option<Box<dyn Operator>>,
        params: Params,
        emitter: Emitter,
    }

    static mut STATE: State =
        State { region: Vec::new(), op: None, params: Params::empty(), emitter: Emitter::new() };

    #[allow(clippy::mut_from_ref)]
    unsafe fn state() -> &'static mut State {
        // The host never calls in concurrently or re-entrantly.
        &mut *std::ptr::addr_of_mut!(STATE)
    }

    /// sluice_alloc: a region of at least size bytes, kept until the next
    /// call; 0 on failure.
    pub fn alloc(size: i32) -> i32 {
        if size < 0 {
            return 0;
        }
        let st = unsafe { state() };
        // The ABI lets the guest free the previous region now.
        st.region = Vec::new();
        let mut v: Vec<u8> = Vec::new();
        if v.try_reserve_exact((size as usize).max(1)).is_err() {
            return 0;
        }
        let p = v.as_mut_ptr() as usize as i32;
        st.region = v;
        p
    }

    unsafe fn bytes<'a>(ptr: i32, len: i32) -> Option<&'a [u8]> {
        if len < 0 || (len > 0 && ptr == 0) {
            return None;
        }
        if len == 0 {
            return Some(&[]);
        }
        Some(std::slice::from_raw_parts(ptr as u32 as usize as *const u8, len as usize))
    }

    /// sluice_init.
    ///
    /// # Safety
    /// ptr and len must describe bytes of the guest's memory (the host's
    /// region).
    pub unsafe fn init(ptr: i32, len: i32, new: fn() -> Box<dyn Operator>) -> i32 {
        host::check_abi_version_1();
        let st = state();
        let raw = match bytes(ptr, len) {
            Some(b) => b,
            None => {
                set_error(-1, &format!("sluice: bad parameters ({} bytes at {:#x})", len, ptr));
                return STATUS_BROKEN;
            }
        };
        st.params = Params::new(raw.to_vec());
        let op = st.op.get_or_insert_with(new);
        match op.init(&st.params) {
            Ok(()) => STATUS_OK,
            Err(msg) => {
                set_error(-1, &msg);
                1
            }
        }
    }

    fn broken(st: &mut State, why: &str) -> i32 {
        st.emitter.reset();
        log(LEVEL_ERROR, &format!("sluice: cannot decode the input batch: {}", why));
        STATUS_BROKEN
    }

    /// sluice_process.
    ///
    /// # Safety
    /// ptr and len must describe bytes of the guest's memory (the host's
    /// region).
    pub unsafe fn process(ptr: i32, len: i32, new: fn() -> Box<dyn Operator>) -> i32 {
        let st = state();
        let batch = match bytes(ptr, len) {
            Some(b) if b.len() >= BATCH_HEADER_SIZE => b,
            _ => return broken(st, &format!("{} bytes, shorter than its header", len)),
        };
        let count = le32(batch, 0);
        let partition = le32(batch, 4) as i32;
        if count as usize > (batch.len() - BATCH_HEADER_SIZE) / RECORD_FIXED_SIZE {
            return broken(st, &format!("record 0 of {}: the count is more than the batch can hold", count));
        }
        if st.op.is_none() {
            st.op = Some(new());
        }
        let State { op, emitter, .. } = st;
        let op = op.as_mut().unwrap();
        emitter.reset();
        emitter.timestamp = TIMESTAMP_INHERIT;
        op.batch_start();
        let mut stream_time = crate::stream_time();
        let mut c = Cursor { b: batch, at: BATCH_HEADER_SIZE };
        for i in 0..count {
            let bad = |why: &str| format!("record {} of {}: {}", i, count, why);
            if c.left() < RECORD_FIXED_SIZE {
                emitter.reset();
                log(LEVEL_ERROR, &format!("sluice: cannot decode the input batch: {}", bad("truncated")));
                return STATUS_BROKEN;
            }
            let at = c.at;
            let kl = le32(batch, at + 20) as i32;
            let vl = le32(batch, at + 24) as i32;
            let header_count = le32(batch, at + 28);
            c.at += RECORD_FIXED_SIZE;
            let kv = c.take(kl).and_then(|k| c.take(vl).map(|v| (k, v)));
            let (key, value) = match kv {
                Some(kv) => kv,
                None => {
                    emitter.reset();
                    log(
                        LEVEL_ERROR,
                        &format!("sluice: cannot decode the input batch: {}", bad("key or value runs past the batch")),
                    );
                    return STATUS_BROKEN;
                }
            };
            let hstart = c.at;
            for _ in 0..header_count {
                if c.header().is_none() {
                    emitter.reset();
                    log(LEVEL_ERROR, &format!("sluice: cannot decode the input batch: {}", bad("malformed headers")));
                    return STATUS_BROKEN;
                }
            }
            let timestamp = le64(batch, at + 8) as i64;
            stream_time = stream_time.max(timestamp);
            let r = Record {
                offset: le64(batch, at) as i64,
                timestamp,
                stream_time,
                input: le32(batch, at + 16),
                partition,
                index: i,
                key,
                value,
                header_count,
                headers: &batch[hstart..c.at],
            };
            emitter.marks.push(emitter.buf.len());
            emitter.timestamp = r.timestamp;
            if let Err(msg) = op.handle(&r, emitter) {
                emitter.reset();
                let msg = if msg.is_empty() { "handle returned an error".to_string() } else { msg };
                set_error(i as i32, &msg);
                return STATUS_RECORD_FAILED;
            }
            if let Some(code) = emitter.error {
                emitter.reset();
                log(LEVEL_ERROR, &format!("sluice: record {}: emit failed: {}", i, code));
                return STATUS_BROKEN;
            }
        }
        if c.left() != 0 {
            emitter.reset();
            log(
                LEVEL_ERROR,
                &format!("sluice: cannot decode the input batch: {} bytes after the last of {} records", c.left(), count),
            );
            return STATUS_BROKEN;
        }
        if let Err(msg) = op.batch_end(emitter) {
            emitter.reset();
            log(LEVEL_ERROR, &format!("sluice: batch_end: {}", msg));
            return STATUS_BROKEN;
        }
        if let Some(code) = emitter.error {
            emitter.reset();
            log(LEVEL_ERROR, &format!("sluice: batch_end: emit failed: {}", code));
            return STATUS_BROKEN;
        }
        let status = emitter.flush();
        emitter.reset();
        status
    }
}

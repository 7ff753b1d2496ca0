// The sluice AssemblyScript SDK: write sluice operators in AssemblyScript,
// compiled to a WebAssembly module that speaks ABI v1 (abi/SPEC.md).
//
// An operator's entry file registers its functions at top level and
// re-exports the SDK's ABI exports:
//
//   import { Record, Emitter, setHandler } from "<path to>/sdk/assemblyscript/assembly/index";
//   export { sluice_alloc, sluice_init, sluice_process } from "<path to>/sdk/assemblyscript/assembly/index";
//
//   function handle(r: Record, out: Emitter): string | null { out.forward(r); return null; }
//   setHandler(handle);
//
// The SDK implements the ABI: the sluice_v1 imports, batch decoding (bounds
// checked: a malformed batch is logged and fails the call with status 2),
// output buffering (ONE emit host call per batch), state stores with paged
// scans, parameters and error reporting. See README.md.

// ---- sluice_v1 imports ----

@external("sluice_v1", "check_abi_version_1")
declare function host_check_abi_version_1(): void;
@external("sluice_v1", "emit")
declare function host_emit(ptr: usize, len: i32): i32;
@external("sluice_v1", "store_open")
declare function host_store_open(ptr: usize, len: i32): i32;
@external("sluice_v1", "state_get")
declare function host_state_get(store: i32, keyPtr: usize, keyLen: i32, valPtr: usize, valCap: i32): i32;
@external("sluice_v1", "state_put")
declare function host_state_put(store: i32, keyPtr: usize, keyLen: i32, valPtr: usize, valLen: i32): i32;
@external("sluice_v1", "state_delete")
declare function host_state_delete(store: i32, keyPtr: usize, keyLen: i32): i32;
@external("sluice_v1", "state_scan")
declare function host_state_scan(store: i32, startPtr: usize, startLen: i32, endPtr: usize, endLen: i32, bufPtr: usize, bufCap: i32): i32;
@external("sluice_v1", "log")
declare function host_log(level: i32, ptr: usize, len: i32): void;
@external("sluice_v1", "set_error")
declare function host_set_error(index: i32, ptr: usize, len: i32): void;
@external("sluice_v1", "stream_time")
declare function host_stream_time(outPtr: usize): i32;

/** Receives stream_time's i64. */
const streamTimeBuf: usize = memory.data(8);

/** The task's stream time at the start of the current batch (in the init
 * function: as of the instance's start): the largest timestamp >= 0 of
 * the stream records handed to the operator before, -1 if none. Never the
 * wall clock. A record's own stream time is Record.streamTime
 * (abi/SPEC.md 12.1). */
export function streamTime(): i64 {
  if (host_stream_time(streamTimeBuf) != 0) return -1;
  return load<i64>(streamTimeBuf);
}

/** The 8-byte time key of ts (ms): big-endian (ts as u64) ^ 1<<63, whose
 * byte order is timestamp order, negative timestamps included. Key
 * windowed state by time key ++ id; expire it by scanning
 * [timeKey(i64.MIN_VALUE), timeKey(cutoff)) and deleting (abi/SPEC.md 12). */
export function timeKey(ts: i64): Uint8Array {
  const out = new Uint8Array(8);
  let u = <u64>ts ^ (<u64>1 << 63);
  for (let i = 7; i >= 0; i--) {
    out[i] = <u8>u;
    u >>= 8;
  }
  return out;
}

/** The timestamp of the time key at the start of b (at least 8 bytes;
 * shorter: i64.MIN_VALUE). */
export function timeKeyDecode(b: Uint8Array): i64 {
  if (b.length < 8) return i64.MIN_VALUE;
  let u: u64 = 0;
  for (let i = 0; i < 8; i++) u = (u << 8) | <u64>b[i];
  return <i64>(u ^ (<u64>1 << 63));
}

// ---- Codes (abi/SPEC.md 8.1) and SDK-only codes ----

export const OK: i32 = 0;
export const ERR_NOT_FOUND: i32 = -1;
export const ERR_MALFORMED: i32 = -2;
export const ERR_BAD_STORE: i32 = -3;
export const ERR_BAD_OUTPUT: i32 = -4;
export const ERR_BUFFER_TOO_SMALL: i32 = -5;
export const ERR_LIMIT: i32 = -6;
export const ERR_NOT_ALLOWED: i32 = -7;
export const ERR_INTERNAL: i32 = -8;
/** SDK: the host's answer made no sense. */
export const ERR_HOST: i32 = -102;

/** A short description of a code, e.g. "unknown store". */
export function codeName(code: i32): string {
  switch (code) {
    case OK: return "ok";
    case ERR_NOT_FOUND: return "not found";
    case ERR_MALFORMED: return "malformed";
    case ERR_BAD_STORE: return "unknown store";
    case ERR_BAD_OUTPUT: return "unknown output or partition";
    case ERR_BUFFER_TOO_SMALL: return "buffer too small";
    case ERR_LIMIT: return "over a limit";
    case ERR_NOT_ALLOWED: return "not allowed now";
    case ERR_INTERNAL: return "host internal error";
    case ERR_HOST: return "unexpected answer from the host";
  }
  return "error " + code.toString();
}

// ---- Statuses and layouts ----

const STATUS_OK: i32 = 0;
const STATUS_RECORD_FAILED: i32 = 1;
const STATUS_BROKEN: i32 = 2;

const BATCH_HEADER_SIZE: usize = 16;
const RECORD_FIXED_SIZE: usize = 32;
const HEADER_FIXED_SIZE: usize = 8;
const OUTPUT_FIXED_SIZE: usize = 28;
const SCAN_ENTRY_FIXED_SIZE: usize = 8;
const INITIAL_SCAN_BUF: i32 = 16 << 10;

/** Partition -1: the host partitions by the key's murmur2, as Kafka. */
export const PARTITION_BY_KEY: i32 = -1;
/** Timestamp -1: the host uses the batch's last record's. */
export const TIMESTAMP_INHERIT: i64 = -1;

// ---- Logging ----

export const LEVEL_DEBUG: i32 = -4;
export const LEVEL_INFO: i32 = 0;
export const LEVEL_WARN: i32 = 4;
export const LEVEL_ERROR: i32 = 8;

/** Writes msg to the task's log (the host truncates it to 16 KiB). */
export function log(level: i32, msg: string): void {
  const b = String.UTF8.encode(msg);
  host_log(level, changetype<usize>(b), b.byteLength);
}

function setError(index: i32, msg: string): void {
  const b = String.UTF8.encode(msg);
  host_set_error(index, changetype<usize>(b), b.byteLength);
}

/** The module's abort (passed to asc as --use abort=...): logs the message
 * and traps, which faults the instance. */
export function sluiceAbort(message: string | null, fileName: string | null, line: u32, column: u32): void {
  let m = "abort: ";
  if (message !== null) m += message;
  if (fileName !== null) m += " at " + fileName + ":" + line.toString() + ":" + column.toString();
  log(LEVEL_ERROR, m);
  unreachable();
}

// ---- Bytes ----

/** Copies len bytes at ptr into a new Uint8Array; null when len is -1. */
export function bytesAt(ptr: usize, len: i32): Uint8Array | null {
  if (len < 0) return null;
  const a = new Uint8Array(len);
  if (len > 0) memory.copy(a.dataStart, ptr, <usize>len);
  return a;
}

/** The UTF-8 bytes of s. */
export function utf8(s: string): Uint8Array {
  return Uint8Array.wrap(String.UTF8.encode(s));
}

function ptrOf(b: Uint8Array | null): usize {
  return b === null ? 0 : b.dataStart;
}

function lenOf(b: Uint8Array | null): i32 {
  return b === null ? -1 : b.length;
}

// ---- Records ----

/** A record header. Keys are never null. */
export class Header {
  constructor(public key: Uint8Array, public value: Uint8Array | null) {}
}

/** An input record. keyPtr/valuePtr point into the batch, which the host
 * overwrites with the next one: they are valid only while the handler
 * runs; key() and value() return copies. A length of -1 is null. */
export class Record {
  offset: i64 = 0;
  timestamp: i64 = 0;
  /** The task's stream time at this record: the max of streamTime() at
   * the batch's start and the batch's timestamps up to this record (-1:
   * none); it does not depend on how the host cuts batches. */
  streamTime: i64 = -1;
  input: u32 = 0;
  partition: i32 = 0;
  /** 0-based index of the record in its batch. */
  index: u32 = 0;
  keyPtr: usize = 0;
  keyLen: i32 = -1;
  valuePtr: usize = 0;
  valueLen: i32 = -1;
  headerCount: u32 = 0;
  headersPtr: usize = 0;

  /** A copy of the key, or null. */
  key(): Uint8Array | null { return bytesAt(this.keyPtr, this.keyLen); }
  /** A copy of the value, or null. */
  value(): Uint8Array | null { return bytesAt(this.valuePtr, this.valueLen); }
  /** A copy of header i (0-based), or null if there is none. O(i). */
  header(i: u32): Header | null {
    if (i >= this.headerCount) return null;
    let p = this.headersPtr;
    for (;;) {
      const kl = load<i32>(p), vl = load<i32>(p + 4);
      if (i == 0) {
        return new Header(bytesAt(p + HEADER_FIXED_SIZE, kl)!, bytesAt(p + HEADER_FIXED_SIZE + <usize>kl, vl));
      }
      i--;
      p += HEADER_FIXED_SIZE + <usize>kl + (vl > 0 ? <usize>vl : 0);
    }
    return null; // not reached
  }
  /** Every header, copied. */
  headers(): Header[] {
    const hs = new Array<Header>(0);
    for (let i: u32 = 0; i < this.headerCount; i++) hs.push(this.header(i)!);
    return hs;
  }
}

// ---- Outputs ----

// The batch's outputs, in one unmanaged buffer handed to the host in one
// emit call; marks[i] is the buffer length when record i started.
let outBuf: usize = 0;
let outLen: usize = 0;
let outCap: usize = 0;
let marks: usize = 0;
let marksCap: u32 = 0;
let nmarks: u32 = 0;
let emitError: i32 = 0;

function reserve(need: usize): bool {
  if (need > <usize>0x7fffffff - outLen) return false;
  if (outCap - outLen >= need) return true;
  let cap = outCap * 2 + need;
  if (cap < 4096) cap = 4096;
  outBuf = outBuf == 0 ? heap.alloc(cap) : heap.realloc(outBuf, cap);
  outCap = cap;
  return true;
}

function emitRawTo(output: u32, partition: i32, ts: i64, keyPtr: usize, keyLen: i32, valuePtr: usize, valueLen: i32, headers: Header[] | null): i32 {
  if (keyLen < -1 || valueLen < -1) {
    if (emitError == 0) emitError = ERR_LIMIT;
    return ERR_LIMIT;
  }
  let need: usize = OUTPUT_FIXED_SIZE + (keyLen > 0 ? <usize>keyLen : 0) + (valueLen > 0 ? <usize>valueLen : 0);
  const n: i32 = headers === null ? 0 : headers.length;
  for (let i = 0; i < n; i++) {
    const h = unchecked(headers![i]);
    need += HEADER_FIXED_SIZE + <usize>h.key.length + <usize>(h.value === null ? 0 : h.value!.length);
  }
  if (!reserve(need)) {
    if (emitError == 0) emitError = ERR_LIMIT;
    return ERR_LIMIT;
  }
  let p = outBuf + outLen;
  store<u32>(p, output);
  store<i32>(p, partition, 4);
  store<i64>(p, ts, 8);
  store<i32>(p, keyLen, 16);
  store<i32>(p, valueLen, 20);
  store<u32>(p, <u32>n, 24);
  p += OUTPUT_FIXED_SIZE;
  if (keyLen > 0) { memory.copy(p, keyPtr, <usize>keyLen); p += <usize>keyLen; }
  if (valueLen > 0) { memory.copy(p, valuePtr, <usize>valueLen); p += <usize>valueLen; }
  for (let i = 0; i < n; i++) {
    const h = unchecked(headers![i]);
    const vl = lenOf(h.value);
    store<i32>(p, h.key.length);
    store<i32>(p, vl, 4);
    p += HEADER_FIXED_SIZE;
    memory.copy(p, h.key.dataStart, <usize>h.key.length);
    p += <usize>h.key.length;
    if (vl > 0) { memory.copy(p, ptrOf(h.value), <usize>vl); p += <usize>vl; }
  }
  outLen += need;
  return OK;
}

/** Collects a batch's outputs; the SDK hands them to the host in one emit
 * call after the batch's last record (and the batch-end function), only if
 * no record failed. */
export class Emitter {
  /** The timestamp emit uses: the record being handled's (in the
   * batch-end function: the batch's last record's). */
  timestamp: i64 = TIMESTAMP_INHERIT;

  /** Emits key/value (null: a null key or value) to output 0, partitioned
   * by key, with this.timestamp, as the Go SDK's Emit. */
  emit(key: Uint8Array | null, value: Uint8Array | null): i32 {
    return emitRawTo(0, PARTITION_BY_KEY, this.timestamp, ptrOf(key), lenOf(key), ptrOf(value), lenOf(value), null);
  }
  /** emit from raw memory (lengths -1: null); the bytes are copied. */
  emitRaw(keyPtr: usize, keyLen: i32, valuePtr: usize, valueLen: i32): i32 {
    return emitRawTo(0, PARTITION_BY_KEY, this.timestamp, keyPtr, keyLen, valuePtr, valueLen, null);
  }
  /** Emits to the job's output number `output`, to `partition` (or
   * PARTITION_BY_KEY) with timestamp ts in ms (or TIMESTAMP_INHERIT). An
   * output or partition the job does not have fails the record. */
  emitTo(output: u32, partition: i32, ts: i64, key: Uint8Array | null, value: Uint8Array | null, headers: Header[] | null = null): i32 {
    return emitRawTo(output, partition, ts, ptrOf(key), lenOf(key), ptrOf(value), lenOf(value), headers);
  }
  /** Re-emits r unchanged (key, value, headers, timestamp) to output 0, by key. */
  forward(r: Record): i32 {
    return emitRawTo(0, PARTITION_BY_KEY, r.timestamp, r.keyPtr, r.keyLen, r.valuePtr, r.valueLen,
      r.headerCount > 0 ? r.headers() : null);
  }
}

const emitter = new Emitter();

function resetOutputs(): void {
  outLen = 0;
  nmarks = 0;
  emitError = 0;
}

function outputSize(p: usize): usize {
  const kl = load<i32>(p, 16), vl = load<i32>(p, 20);
  const n = load<u32>(p, 24);
  let size: usize = OUTPUT_FIXED_SIZE + (kl > 0 ? <usize>kl : 0) + (vl > 0 ? <usize>vl : 0);
  for (let i: u32 = 0; i < n; i++) {
    const h = p + size;
    const hk = load<i32>(h), hv = load<i32>(h, 4);
    size += HEADER_FIXED_SIZE + <usize>hk + (hv > 0 ? <usize>hv : 0);
  }
  return size;
}

// flush hands the outputs to the host in one emit call. When the host
// refuses them (an unknown output or partition) it re-emits them one at a
// time to find the record responsible and fails it, as the Go SDK does.
function flush(): i32 {
  if (outLen == 0) return STATUS_OK;
  const code = host_emit(outBuf, <i32>outLen);
  if (code == OK) return STATUS_OK;
  if (code == ERR_BAD_OUTPUT) {
    for (let i: u32 = 0; i < nmarks; i++) {
      let off = <usize>load<u32>(marks + (<usize>i << 2));
      const end = i + 1 < nmarks ? <usize>load<u32>(marks + (<usize>(i + 1) << 2)) : outLen;
      while (off < end) {
        const n = outputSize(outBuf + off);
        if (host_emit(outBuf + off, <i32>n) != OK) {
          const part = load<i32>(outBuf + off, 4);
          setError(<i32>i, "emit to output " + load<u32>(outBuf + off).toString() + ", partition " +
            (part == PARTITION_BY_KEY ? "by key" : part.toString()) + ": " + codeName(ERR_BAD_OUTPUT));
          return STATUS_RECORD_FAILED;
        }
        off += n;
      }
    }
  }
  log(LEVEL_ERROR, "sluice: emit of " + outLen.toString() + " bytes of outputs failed: " + codeName(code) + " (" + code.toString() + ")");
  return STATUS_BROKEN;
}

// ---- Parameters ----

let paramsJSON: Uint8Array = new Uint8Array(0);

/** The job file's `parameters` as raw JSON bytes (possibly empty). */
export function params(): Uint8Array {
  return paramsJSON;
}

function isWS(c: u8): bool {
  return c == 0x20 || c == 0x09 || c == 0x0a || c == 0x0d;
}

class Cursor {
  constructor(public p: i32, public end: i32) {}
  skipWS(): void {
    while (this.p < this.end && isWS(unchecked(paramsJSON[this.p]))) this.p++;
  }
  at(c: u8): bool {
    return this.p < this.end && unchecked(paramsJSON[this.p]) == c;
  }
}

function hexVal(c: u8): i32 {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  return -1;
}

function hex4(c: Cursor): i32 {
  if (c.end - c.p < 4) return -1;
  let v = 0;
  for (let i = 0; i < 4; i++) {
    const h = hexVal(paramsJSON[c.p + i]);
    if (h < 0) return -1;
    v = (v << 4) | h;
  }
  c.p += 4;
  return v;
}

// Decodes the JSON string at the cursor (at its opening quote); null if
// it is not one.
function jsonString(c: Cursor): string | null {
  if (!c.at(0x22)) return null;
  c.p++;
  let s = "";
  let run = c.p;
  while (c.p < c.end) {
    const b = paramsJSON[c.p];
    if (b == 0x22) {
      s += String.UTF8.decodeUnsafe(paramsJSON.dataStart + <usize>run, <usize>(c.p - run));
      c.p++;
      return s;
    }
    if (b != 0x5c) { c.p++; continue; }
    s += String.UTF8.decodeUnsafe(paramsJSON.dataStart + <usize>run, <usize>(c.p - run));
    c.p++;
    if (c.p >= c.end) return null;
    const e = paramsJSON[c.p++];
    switch (e) {
      case 0x22: s += "\""; break;
      case 0x5c: s += "\\"; break;
      case 0x2f: s += "/"; break;
      case 0x62: s += "\b"; break;
      case 0x66: s += "\f"; break;
      case 0x6e: s += "\n"; break;
      case 0x72: s += "\r"; break;
      case 0x74: s += "\t"; break;
      case 0x75: {
        const u = hex4(c);
        if (u < 0) return null;
        s += String.fromCharCode(u); // surrogate pairs come as two escapes
        break;
      }
      default: return null;
    }
    run = c.p;
  }
  return null;
}

// Skips any JSON value, loosely (brackets matched, strings skipped).
function skipValue(c: Cursor): bool {
  let depth = 0;
  while (c.p < c.end) {
    const b = paramsJSON[c.p];
    if (b == 0x22) {
      if (jsonString(c) === null) return false;
    } else {
      if (b == 0x7b || b == 0x5b) depth++;
      else if (b == 0x7d || b == 0x5d) {
        if (depth == 0) return true;
        depth--;
      } else if (b == 0x2c && depth == 0) return true;
      c.p++;
    }
    if (depth == 0) {
      c.skipWS();
      if (c.at(0x2c) || c.at(0x7d)) return true;
    }
  }
  return depth == 0;
}

// Finds the top-level key of a flat object; the cursor is then at its value.
function findParam(key: string): Cursor | null {
  const c = new Cursor(0, paramsJSON.length);
  c.skipWS();
  if (!c.at(0x7b)) return null;
  c.p++;
  for (;;) {
    c.skipWS();
    const k = jsonString(c);
    if (k === null) return null;
    c.skipWS();
    if (!c.at(0x3a)) return null;
    c.p++;
    c.skipWS();
    if (k == key) return c;
    if (!skipValue(c)) return null;
    c.skipWS();
    if (!c.at(0x2c)) return null;
    c.p++;
  }
  return null; // not reached
}

/** The string parameter key of a flat JSON object, or def when absent or
 * not a string. */
export function paramString(key: string, def: string): string {
  const c = findParam(key);
  if (c === null) return def;
  const s = jsonString(c);
  return s === null ? def : s;
}

/** The integer parameter key (a JSON integer in int64 range, no fraction
 * or exponent), or def when absent or not one. */
export function paramInt(key: string, def: i64): i64 {
  const c = findParam(key);
  if (c === null) return def;
  const start = c.p;
  let end = start;
  while (end < c.end) {
    const b = paramsJSON[end];
    if (b == 0x2c || b == 0x7d || isWS(b)) break;
    end++;
  }
  const r = parseInt64(paramsJSON.dataStart + <usize>start, end - start);
  return r.ok ? r.value : def;
}

// ---- Decimal integers, as the Go SDK's Int64 codec ----

/** The result of parseInt64. */
export class ParsedInt {
  ok: bool = false;
  value: i64 = 0;
}

const parsed = new ParsedInt();

/** Parses an optional '-' and 1 to 19 decimal digits, in int64 range (as
 * the Go SDK's Int64 codec). The result object is reused. */
export function parseInt64(ptr: usize, len: i32): ParsedInt {
  parsed.ok = false;
  parsed.value = 0;
  const neg = len > 0 && load<u8>(ptr) == 0x2d;
  const d = neg ? ptr + 1 : ptr;
  const nd = neg ? len - 1 : len;
  if (nd <= 0 || nd > 19) return parsed;
  let v: u64 = 0;
  for (let i = 0; i < nd; i++) {
    const c = load<u8>(d + <usize>i);
    if (c < 0x30 || c > 0x39) return parsed;
    v = v * 10 + <u64>(c - 0x30);
  }
  if (neg) {
    if (v > (<u64>1 << 63)) return parsed;
    parsed.value = <i64>(0 - v);
  } else {
    if (v > <u64>i64.MAX_VALUE) return parsed;
    parsed.value = <i64>v;
  }
  parsed.ok = true;
  return parsed;
}

/** Writes v in decimal ASCII ending just before buf + 21 (buf holds at
 * least 21 bytes) and returns the number of bytes; they start at
 * buf + 21 - n. */
export function formatInt64(v: i64, buf: usize): i32 {
  let p = buf + 21;
  let u: u64 = v < 0 ? 0 - <u64>v : <u64>v;
  do {
    p--;
    store<u8>(p, <u8>(0x30 + u % 10));
    u /= 10;
  } while (u != 0);
  if (v < 0) {
    p--;
    store<u8>(p, 0x2d);
  }
  return <i32>(buf + 21 - p);
}

// ---- State stores ----

/** Called for each scanned entry; return false to stop the scan. */
export type ScanFn = (key: Uint8Array, value: Uint8Array) => bool;

/** A state store declared under `stores:` in the job file. */
export class Store {
  /** The handle (>= 0), or the code store_open returned. */
  handle: i32;
  name: string;
  /** The code of the last get: OK, ERR_NOT_FOUND or an error. */
  code: i32 = OK;
  // getRaw's buffer; after getRaw returns n >= 0 the value is at bufPtr.
  bufPtr: usize = 0;
  bufCap: i32 = 0;

  constructor(name: string, handle: i32) {
    this.name = name;
    this.handle = handle;
  }

  /** Resolves the store name to a handle. Check ok(): a name the job does
   * not declare gives handle ERR_BAD_STORE. Open once (in the init
   * function or lazily). */
  static open(name: string): Store {
    const b = String.UTF8.encode(name);
    return new Store(name, host_store_open(changetype<usize>(b), b.byteLength));
  }

  ok(): bool { return this.handle >= 0; }

  /** Looks the key at [keyPtr, +keyLen) up into the store's own buffer:
   * returns the value's length n (the value is at this.bufPtr until the
   * next getRaw), ERR_NOT_FOUND, or another negative code. */
  getRaw(keyPtr: usize, keyLen: i32): i32 {
    if (this.bufPtr == 0) {
      this.bufCap = 256;
      this.bufPtr = heap.alloc(<usize>this.bufCap);
    }
    for (;;) {
      const n = host_state_get(this.handle, keyPtr, keyLen < 0 ? 0 : keyLen, this.bufPtr, this.bufCap);
      if (n <= this.bufCap) return n;
      this.bufPtr = heap.realloc(this.bufPtr, <usize>n);
      this.bufCap = n;
    }
    return ERR_HOST; // not reached
  }

  /** The value of key (a copy), or null; this.code says whether it was
   * absent (ERR_NOT_FOUND) or an error happened. */
  get(key: Uint8Array): Uint8Array | null {
    const n = this.getRaw(key.dataStart, key.length);
    if (n < 0) {
      this.code = n;
      return null;
    }
    this.code = OK;
    return bytesAt(this.bufPtr, n);
  }

  /** Sets key to value. Writes in sluice_process are staged by the host
   * and kept only if the batch succeeds; reads see them. */
  put(key: Uint8Array, value: Uint8Array): i32 {
    return host_state_put(this.handle, key.dataStart, key.length, value.dataStart, value.length);
  }
  putRaw(keyPtr: usize, keyLen: i32, valuePtr: usize, valueLen: i32): i32 {
    return host_state_put(this.handle, keyPtr, keyLen < 0 ? 0 : keyLen, valuePtr, valueLen < 0 ? 0 : valueLen);
  }

  /** Removes key (absent keys are fine). */
  delete(key: Uint8Array): i32 {
    return host_state_delete(this.handle, key.dataStart, key.length);
  }

  /** Calls fn for each entry with start <= key < end in ascending
   * byte-wise order (end null or empty: no upper bound), a page at a
   * time. Returns OK when every entry was seen or fn stopped the scan,
   * else a negative code. */
  scan(start: Uint8Array | null, end: Uint8Array | null, fn: ScanFn): i32 {
    let cap = INITIAL_SCAN_BUF;
    let buf = heap.alloc(<usize>cap);
    const startLen = start === null ? 0 : start.length;
    let next = new Uint8Array(startLen);
    if (startLen > 0) memory.copy(next.dataStart, start!.dataStart, <usize>startLen);
    const endPtr = ptrOf(end);
    const endLen = end === null ? 0 : end.length;
    let result = OK;
    for (;;) {
      const n = host_state_scan(this.handle, next.dataStart, next.length, endPtr, endLen, buf, cap);
      if (n == 0) break;
      if (n == ERR_BUFFER_TOO_SMALL) {
        const need = load<u32>(buf);
        if (need <= <u32>cap || need > 0x7fffffff) { result = ERR_HOST; break; }
        buf = heap.realloc(buf, <usize>need);
        cap = <i32>need;
        continue;
      }
      if (n < 0) { result = n; break; }
      if (n > cap) { result = ERR_HOST; break; }
      let p = buf;
      const e = buf + <usize>n;
      let lastKey: Uint8Array | null = null;
      let stop = false;
      while (p < e) {
        if (e - p < SCAN_ENTRY_FIXED_SIZE) { result = ERR_HOST; stop = true; break; }
        const kl = load<u32>(p), vl = load<u32>(p, 4);
        p += SCAN_ENTRY_FIXED_SIZE;
        if (<usize>kl > e - p || <usize>vl > e - p - <usize>kl) { result = ERR_HOST; stop = true; break; }
        const k = bytesAt(p, <i32>kl)!;
        const v = bytesAt(p + <usize>kl, <i32>vl)!;
        p += <usize>kl + <usize>vl;
        lastKey = k;
        if (!fn(k, v)) { stop = true; break; }
      }
      if (stop || lastKey === null) break;
      next = new Uint8Array(lastKey.length + 1);
      memory.copy(next.dataStart, lastKey.dataStart, <usize>lastKey.length);
    }
    heap.free(buf);
    return result;
  }
}

// ---- What the operator registers ----

/** Handles one record; returns null, or an error message that fails the
 * record (the batch's outputs and state writes are discarded and the job's
 * error policy applies, which may re-run the records before it: keep
 * per-batch effects in state or reset them in the batch-start function). */
export type Handler = (r: Record, out: Emitter) => string | null;
/** Runs once, from sluice_init, with the parameters (see params()). A
 * message fails the deploy or task start. Stores may be opened and read;
 * writes and emits are refused. */
export type InitFn = () => string | null;
/** Runs before the first record of every batch (also of a batch re-run). */
export type BatchStartFn = () => void;
/** Runs after the last record of a batch in which no record failed, before
 * the outputs go to the host. A message fails the task (status 2). */
export type BatchEndFn = (out: Emitter) => string | null;

let handler: Handler | null = null;
let onInit: InitFn | null = null;
let onBatchStart: BatchStartFn | null = null;
let onBatchEnd: BatchEndFn | null = null;

export function setHandler(fn: Handler): void { handler = fn; }
export function setOnInit(fn: InitFn): void { onInit = fn; }
export function setOnBatchStart(fn: BatchStartFn): void { onBatchStart = fn; }
export function setOnBatchEnd(fn: BatchEndFn): void { onBatchEnd = fn; }

// ---- ABI exports ----

let region: usize = 0;

/** ABI: a region of at least size bytes for the host to write into. */
export function sluice_alloc(size: i32): usize {
  if (size < 0) return 0;
  if (region != 0) heap.free(region);
  region = heap.alloc(size > 0 ? <usize>size : 1);
  return region;
}

/** ABI: called once with the parameters' JSON. */
export function sluice_init(ptr: usize, len: i32): i32 {
  host_check_abi_version_1();
  if (len < 0) {
    setError(-1, "sluice: bad parameters from the host");
    return 1;
  }
  paramsJSON = bytesAt(ptr, len)!;
  if (onInit !== null) {
    const err = onInit!();
    if (err !== null) {
      setError(-1, err);
      return 1;
    }
  }
  return 0;
}

const record = new Record();

function broken(why: string, i: u32, count: u32): i32 {
  resetOutputs();
  log(LEVEL_ERROR, "sluice: cannot decode the input batch: record " + i.toString() + " of " + count.toString() + ": " + why);
  return STATUS_BROKEN;
}

/** ABI: processes one batch. */
export function sluice_process(batch: usize, batchLen: i32): i32 {
  if (batchLen < <i32>BATCH_HEADER_SIZE) {
    resetOutputs();
    log(LEVEL_ERROR, "sluice: cannot decode the input batch: " + batchLen.toString() + " bytes, shorter than its header");
    return STATUS_BROKEN;
  }
  const end = batch + <usize>batchLen;
  let p = batch + BATCH_HEADER_SIZE;
  const count = load<u32>(batch);
  const partition = load<i32>(batch, 4);
  if (<usize>count > (end - p) / RECORD_FIXED_SIZE) return broken("the count is more than the batch can hold", 0, count);
  resetOutputs();
  emitter.timestamp = TIMESTAMP_INHERIT;
  if (marksCap < count) {
    marks = marks == 0 ? heap.alloc(<usize>count << 2) : heap.realloc(marks, <usize>count << 2);
    marksCap = count;
  }
  if (onBatchStart !== null) onBatchStart!();
  let st = streamTime();
  const r = record;
  for (let i: u32 = 0; i < count; i++) {
    if (end - p < RECORD_FIXED_SIZE) return broken("truncated", i, count);
    r.offset = load<i64>(p);
    r.timestamp = load<i64>(p, 8);
    if (r.timestamp > st) st = r.timestamp;
    r.streamTime = st;
    r.input = load<u32>(p, 16);
    r.partition = partition;
    r.index = i;
    const kl = load<i32>(p, 20), vl = load<i32>(p, 24);
    r.keyLen = kl;
    r.valueLen = vl;
    r.headerCount = load<u32>(p, 28);
    p += RECORD_FIXED_SIZE;
    if (kl < -1 || vl < -1) return broken("key or value runs past the batch", i, count);
    r.keyPtr = kl < 0 ? 0 : p;
    if (kl > 0) {
      if (<usize>kl > end - p) return broken("key or value runs past the batch", i, count);
      p += <usize>kl;
    }
    r.valuePtr = vl < 0 ? 0 : p;
    if (vl > 0) {
      if (<usize>vl > end - p) return broken("key or value runs past the batch", i, count);
      p += <usize>vl;
    }
    r.headersPtr = p;
    for (let h: u32 = 0; h < r.headerCount; h++) {
      if (end - p < HEADER_FIXED_SIZE) return broken("malformed headers", i, count);
      const hk = load<i32>(p), hv = load<i32>(p, 4);
      p += HEADER_FIXED_SIZE;
      if (hk < 0 || hv < -1 || <usize>hk > end - p) return broken("malformed headers", i, count);
      p += <usize>hk;
      if (hv > 0) {
        if (<usize>hv > end - p) return broken("malformed headers", i, count);
        p += <usize>hv;
      }
    }
    store<u32>(marks + (<usize>i << 2), <u32>outLen);
    nmarks = i + 1;
    emitter.timestamp = r.timestamp;
    if (handler !== null) {
      const err = handler!(r, emitter);
      if (err !== null) {
        resetOutputs();
        setError(<i32>i, err);
        return STATUS_RECORD_FAILED;
      }
    }
    if (emitError != 0) {
      log(LEVEL_ERROR, "sluice: record " + i.toString() + ": emit failed: " + codeName(emitError));
      resetOutputs();
      return STATUS_BROKEN;
    }
  }
  if (p != end) {
    resetOutputs();
    log(LEVEL_ERROR, "sluice: cannot decode the input batch: " + (end - p).toString() + " bytes after the last of " + count.toString() + " records");
    return STATUS_BROKEN;
  }
  if (onBatchEnd !== null) {
    const err = onBatchEnd!(emitter);
    if (err !== null) {
      log(LEVEL_ERROR, "sluice: batch end: " + err);
      resetOutputs();
      return STATUS_BROKEN;
    }
    if (emitError != 0) {
      log(LEVEL_ERROR, "sluice: batch end: emit failed: " + codeName(emitError));
      resetOutputs();
      return STATUS_BROKEN;
    }
  }
  const status = flush();
  resetOutputs();
  return status;
}

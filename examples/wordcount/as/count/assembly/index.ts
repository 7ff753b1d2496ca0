// count is the second operator of the word count example, in
// AssemblyScript: it reads records keyed by word, keeps each word's running
// count in the state store "counts" (key = the word, value = the count as
// decimal ASCII), and emits to output 0 records with key = the word and
// value = its new count as decimal ASCII. It makes the same outputs and
// state as the Go version (examples/wordcount/go/count).
//
// Counts are updated and emitted once per word per batch, after the
// batch's last record, in the order the words first appear in the batch.
// Each word's stored count is read once per batch, at its first record; a
// stored value that is not a decimal integer fails that record. Records
// with a null key carry no word and are ignored.
//
// The batch's words live in a hash table (open addressing, linear probing,
// FNV-1a) over an array of tallies in first-appearance order; the words'
// bytes are copied into one arena. All three are unmanaged memory, reset
// per batch and grown with heap.realloc. Counts are i64 and wrap as Go's.
//
// Build with `sluice build examples/wordcount/as/count`.
import {
  Emitter, Record, Store, OK, ERR_NOT_FOUND, codeName, parseInt64, formatInt64,
  setHandler, setOnBatchStart, setOnBatchEnd,
} from "../../../../../sdk/assemblyscript/assembly/index";
export { sluice_alloc, sluice_init, sluice_process } from "../../../../../sdk/assemblyscript/assembly/index";

// A tally: hash u32 @0, word offset in the arena u32 @4, len i32 @8,
// total i64 @16.
const TALLY: usize = 24;

let tallies: usize = 0;
let ntallies: u32 = 0;
let talliesCap: u32 = 0;
let slots: usize = 0; // i32: index into tallies + 1; 0 = empty
let nslots: u32 = 0; // a power of two
let arena: usize = 0;
let arenaLen: usize = 0;
let arenaCap: usize = 0;

let counts: Store | null = null;
const numBuf: usize = heap.alloc(32);

function fnv1a(p: usize, n: i32): u32 {
  let h: u32 = 2166136261;
  for (let i = 0; i < n; i++) {
    h ^= load<u8>(p + <usize>i);
    h *= 16777619;
  }
  return h;
}

function startBatch(): void {
  ntallies = 0;
  arenaLen = 0;
  if (slots != 0) memory.fill(slots, 0, <usize>nslots << 2);
}

// Doubles the table and re-inserts the tallies.
function growSlots(): void {
  const n: u32 = nslots != 0 ? nslots * 2 : 1024;
  const s = heap.alloc(<usize>n << 2);
  memory.fill(s, 0, <usize>n << 2);
  for (let i: u32 = 0; i < ntallies; i++) {
    let j = load<u32>(tallies + <usize>i * TALLY) & (n - 1);
    while (load<i32>(s + (<usize>j << 2)) != 0) j = (j + 1) & (n - 1);
    store<i32>(s + (<usize>j << 2), <i32>i + 1);
  }
  if (slots != 0) heap.free(slots);
  slots = s;
  nslots = n;
}

const HEX = "0123456789abcdef";

// Quotes bytes for an error message, roughly as Go's %q.
function quoted(p: usize, n: i32): string {
  let s = "\"";
  for (let i = 0; i < n && i < 64; i++) {
    const c = load<u8>(p + <usize>i);
    if (c == 0x22 || c == 0x5c) s += "\\" + String.fromCharCode(c);
    else if (c < 0x20 || c >= 0x7f) s += "\\x" + HEX.charAt(c >> 4) + HEX.charAt(c & 15);
    else s += String.fromCharCode(c);
  }
  return s + "\"";
}

// The stored count of a word (0 if absent) in stored.value, or an error.
class Stored {
  value: i64 = 0;
}
const stored = new Stored();

function storedCount(word: usize, len: i32): string | null {
  if (counts === null) {
    const s = Store.open("counts");
    if (!s.ok()) return "sluice: store \"counts\": open: " + codeName(s.handle);
    counts = s;
  }
  const st = counts!;
  const got = st.getRaw(word, len);
  if (got == ERR_NOT_FOUND) {
    stored.value = 0;
    return null;
  }
  if (got < 0) return "sluice: store \"counts\": get: " + codeName(got);
  const r = parseInt64(st.bufPtr, got);
  if (!r.ok) {
    return "sluice: store \"counts\": decoding the value of " + quoted(word, len) + ": " +
      quoted(st.bufPtr, got) + ": not a decimal integer";
  }
  stored.value = r.value;
  return null;
}

function count(r: Record, out: Emitter): string | null {
  if (r.keyLen < 0) return null; // null key: no word
  const key = r.keyPtr;
  const len = r.keyLen;
  if (ntallies * 2 >= nslots) growSlots();
  const h = fnv1a(key, len);
  let j = h & (nslots - 1);
  for (;;) {
    const slot = load<i32>(slots + (<usize>j << 2));
    if (slot == 0) break;
    const t = tallies + <usize>(slot - 1) * TALLY;
    if (load<u32>(t) == h && load<i32>(t, 8) == len && memory.compare(arena + <usize>load<u32>(t, 4), key, <usize>len) == 0) {
      store<i64>(t, load<i64>(t, 16) + 1, 16);
      return null;
    }
    j = (j + 1) & (nslots - 1);
  }
  // The word's first record in this batch: start from its stored count.
  const err = storedCount(key, len);
  if (err !== null) return err;
  if (ntallies == talliesCap) {
    const c: u32 = talliesCap != 0 ? talliesCap * 2 : 1024;
    tallies = tallies == 0 ? heap.alloc(<usize>c * TALLY) : heap.realloc(tallies, <usize>c * TALLY);
    talliesCap = c;
  }
  if (arenaCap - arenaLen < <usize>len) {
    const c = arenaCap * 2 + <usize>len + 4096;
    arena = arena == 0 ? heap.alloc(c) : heap.realloc(arena, c);
    arenaCap = c;
  }
  if (len > 0) memory.copy(arena + arenaLen, key, <usize>len);
  const t = tallies + <usize>ntallies * TALLY;
  store<u32>(t, h);
  store<u32>(t, <u32>arenaLen, 4);
  store<i32>(t, len, 8);
  store<i64>(t, stored.value + 1, 16);
  arenaLen += <usize>len;
  ntallies++;
  store<i32>(slots + (<usize>j << 2), <i32>ntallies);
  return null;
}

function endBatch(out: Emitter): string | null {
  for (let i: u32 = 0; i < ntallies; i++) {
    const t = tallies + <usize>i * TALLY;
    const n = formatInt64(load<i64>(t, 16), numBuf);
    const v = numBuf + 21 - <usize>n;
    const word = arena + <usize>load<u32>(t, 4);
    const len = load<i32>(t, 8);
    const rc = counts!.putRaw(word, len, v, n);
    if (rc != OK) return "sluice: store \"counts\": put: " + codeName(rc);
    out.emitRaw(word, len, v, n);
  }
  return null;
}

setOnBatchStart(startBatch);
setHandler(count);
setOnBatchEnd(endBatch);

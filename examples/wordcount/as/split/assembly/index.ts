// split is the first operator of the word count example, in
// AssemblyScript: for each record (one sentence per value) it emits one
// record per word to output 0, with the word as both key and value. A word
// is a maximal run of bytes that are not ASCII whitespace (space, \t, \n,
// \v, \f, \r). It makes the same outputs as the Go version
// (examples/wordcount/go/split).
//
// Build with `sluice build examples/wordcount/as/split`.
import { Emitter, Record, setHandler } from "../../../../../sdk/assemblyscript/assembly/index";
export { sluice_alloc, sluice_init, sluice_process } from "../../../../../sdk/assemblyscript/assembly/index";

// isSpace: ' ' and \t \n \v \f \r (9 to 13).
@inline
function isSpace(c: u8): bool {
  return c == 0x20 || <u8>(c - 9) <= 4;
}

function split(r: Record, out: Emitter): string | null {
  const p = r.valuePtr;
  const n = r.valueLen;
  let i = 0;
  while (i < n) {
    while (i < n && isSpace(load<u8>(p + <usize>i))) i++;
    let j = i;
    while (j < n && !isSpace(load<u8>(p + <usize>j))) j++;
    if (j > i) out.emitRaw(p + <usize>i, j - i, p + <usize>i, j - i);
    i = j;
  }
  return null;
}

setHandler(split);

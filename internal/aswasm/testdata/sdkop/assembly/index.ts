// A test operator exercising the AssemblyScript SDK's API; the record's
// key is the command, its value the argument. See aswasm_test.go.
import {
  Emitter, Header, Record, Store, PARTITION_BY_KEY, TIMESTAMP_INHERIT, LEVEL_INFO, log, utf8,
  paramString, paramInt, setHandler, setOnInit, setOnBatchStart, streamTime, timeKey, timeKeyDecode,
} from "../../../../../sdk/assemblyscript/assembly/index";
export { sluice_alloc, sluice_init, sluice_process } from "../../../../../sdk/assemblyscript/assembly/index";

let store: Store | null = null;
let name = "";
let n: i64 = 0;
let batchStarts = 0;
let scanOut: Emitter | null = null;
let scanned = 0;

function init(): string | null {
  if (paramInt("fail_init", 0) == 1) return "init refused: " + paramString("why", "no reason");
  name = paramString("name", "def");
  n = paramInt("n", -1);
  const s = Store.open("s");
  if (!s.ok()) return "no store s";
  store = s;
  log(LEVEL_INFO, "init done");
  return null;
}

function batchStart(): void {
  batchStarts++;
}

function str(b: Uint8Array | null): string {
  return b === null ? "" : String.UTF8.decode(b.buffer);
}

function emitEntry(k: Uint8Array, v: Uint8Array): bool {
  scanned++;
  scanOut!.emit(k, v);
  return true;
}

function handle(r: Record, out: Emitter): string | null {
  const cmd = str(r.key());
  const arg = r.value();
  const st = store!;
  if (cmd == "fail") return "boom: " + str(arg);
  if (cmd == "params") {
    out.emit(utf8("params"), utf8(name + "|" + n.toString()));
  } else if (cmd == "put") {
    const a = str(arg);
    const eq = a.indexOf("=");
    if (eq < 0) return "no =";
    st.put(utf8(a.substring(0, eq)), utf8(a.substring(eq + 1)));
  } else if (cmd == "del") {
    st.delete(arg!);
  } else if (cmd == "get") {
    const v = st.get(arg!);
    out.emit(utf8("get"), v);
  } else if (cmd == "scan") {
    scanOut = out;
    scanned = 0;
    const rc = st.scan(null, null, emitEntry);
    out.emit(utf8("scanned"), utf8(rc.toString() + " " + scanned.toString()));
  } else if (cmd == "fwd") {
    out.forward(r);
  } else if (cmd == "st") {
    out.emit(utf8("st"), utf8(r.streamTime.toString() + " " + streamTime().toString()));
  } else if (cmd == "tk") {
    const k = timeKey(I64.parseInt(str(arg)));
    let hex = "";
    for (let i = 0; i < 8; i++) hex += (k[i] < 16 ? "0" : "") + k[i].toString(16);
    out.emit(utf8("tk"), utf8(hex + " " + timeKeyDecode(k).toString()));
  } else if (cmd == "batches") {
    out.emit(utf8("batches"), utf8(batchStarts.toString()));
  } else if (cmd == "badout") {
    out.emitTo(5, PARTITION_BY_KEY, TIMESTAMP_INHERIT, null, null);
  } else if (cmd == "panic") {
    throw new Error("panicked: " + str(arg));
  } else if (cmd == "golden") {
    out.emitTo(0, PARTITION_BY_KEY, TIMESTAMP_INHERIT, utf8("word"), utf8("1"));
    const hs = new Array<Header>(0);
    hs.push(new Header(utf8("trace"), null));
    out.emitTo(1, 3, 1700000000123, null, utf8("x"), hs);
  } else {
    out.emit(r.key(), r.value());
  }
  return null;
}

setOnInit(init);
setOnBatchStart(batchStart);
setHandler(handle);

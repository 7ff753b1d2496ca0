// passthrough is the operator of the pass-through benchmark job, in
// AssemblyScript: it writes every input record to output 0 unchanged (key,
// value, headers and timestamp), partitioned by key, as the Go version
// (examples/passthrough/go/passthrough) does, byte for byte. It does no
// work of its own, so the job measures the host and the SDK's decoding and
// output buffering.
//
// Build with `sluice build examples/passthrough/as/passthrough`.
import { Emitter, Record, setHandler } from "../../../../../sdk/assemblyscript/assembly/index";
export { sluice_alloc, sluice_init, sluice_process } from "../../../../../sdk/assemblyscript/assembly/index";

function passThrough(r: Record, out: Emitter): string | null {
  // forward fails only when the batch's outputs would pass 2 GiB; the SDK
  // then fails the whole batch, so there is nothing to add here.
  out.forward(r);
  return null;
}

setHandler(passThrough);

package guestcall

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sluice-io/sluice/abi"
	"github.com/sluice-io/sluice/plugins"
)

// MinRegion is the smallest input region the host asks sluice_alloc for,
// so that small batches do not make the guest allocate again and again.
const MinRegion = 64 << 10

// ClosedFault is the fault of calling what on a closed instance.
func (s *State) ClosedFault(what string) *plugins.Fault {
	return s.fault(what + " called on a closed instance")
}

// CheckInput checks a call of Instance.Input(n) on an instance that is
// closed or not.
func (s *State) CheckInput(n int, closed bool) error {
	if n < 0 || uint64(n) > 1<<31 {
		return fmt.Errorf("%s: input of %d bytes is out of range", s.Name, n)
	}
	if closed {
		// Its memory is released: a slice of it would fault the host.
		return s.ClosedFault("Input")
	}
	return nil
}

// RegionSize says whether an input region of regionCap bytes (0: none
// yet) must be replaced to hold n bytes, and if so how large the new one
// is.
func RegionSize(n int, regionCap uint32) (size uint64, grow bool) {
	if regionCap != 0 && uint32(n) <= regionCap {
		return 0, false
	}
	size = max(uint64(n), 2*uint64(regionCap), MinRegion)
	return min(size, 1<<31), true
}

// CheckRegion checks the region [ptr, ptr+size) that sluice_alloc(size)
// returned in a guest memory of memSize bytes, and returns the fault of a
// bad one.
func (s *State) CheckRegion(size uint64, ptr uint32, memSize uint64) *plugins.Fault {
	if ptr == 0 {
		return s.fault(fmt.Sprintf("%s(%d) returned 0: the guest could not allocate the input region", abi.ExportAlloc, size))
	}
	if uint64(ptr)+size > memSize {
		return s.fault(fmt.Sprintf("%s(%d) returned [ptr %#x, len %d], which is outside guest memory (%d bytes)",
			abi.ExportAlloc, size, ptr, size, memSize))
	}
	return nil
}

// CheckBatch checks a call of Instance.Process(n) on an instance, closed
// or not, whose input region holds regionCap bytes.
func (s *State) CheckBatch(n int, regionCap uint32, closed bool) error {
	if n < abi.BatchHeaderSize || uint64(n) > uint64(regionCap) {
		return fmt.Errorf("%s: Process(%d): the batch must be between %d bytes and the %d bytes obtained through Input",
			s.Name, n, abi.BatchHeaderSize, regionCap)
	}
	if closed {
		return s.ClosedFault("Process")
	}
	return nil
}

// Errors that stop a guest at a yield (the Err of a timeout fault).
var (
	ErrCallTimeout = errors.New("call timeout")
	ErrCallerDone  = errors.New("caller's context done")
)

// Watch prepares a guest call for the caller's ctx: it returns ctx's error
// if ctx is done already, else arranges for interrupt to run if ctx is
// done during the call and returns the function that undoes that (nil for
// a ctx that is never done, which costs nothing).
func Watch(ctx context.Context, interrupt func()) (stop func() bool, err error) {
	if ctx.Done() == nil {
		return nil, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return context.AfterFunc(ctx, interrupt), nil
}

// InitError is the error of sluice_init's status: nil for abi.StatusOK.
func (s *State) InitError(status int32) *plugins.InitError {
	if status == abi.StatusOK {
		return nil
	}
	ie := &plugins.InitError{Status: status}
	if s.ErrSet {
		ie.Message = string(s.ErrMsg)
	}
	return ie
}

// ProcessResult is the outcome of sluice_process's status over a batch of
// count records: an ABI fault f (the runtime closes the instance), or err,
// nil or a *plugins.RecordError (the instance stays usable).
func (s *State) ProcessResult(status int32, count uint32) (f *plugins.Fault, err error) {
	switch status {
	case abi.StatusOK:
		return nil, nil
	case abi.StatusRecordFailed:
		if !s.ErrSet {
			return s.fault("sluice_process returned status 1 (record failed) without calling set_error"), nil
		}
		if s.ErrIndex < 0 || uint32(s.ErrIndex) >= count {
			return s.fault(fmt.Sprintf("sluice_process returned status 1 (record failed) with set_error index %d, outside the batch of %d records",
				s.ErrIndex, count)), nil
		}
		return nil, &plugins.RecordError{Index: int(s.ErrIndex), Message: string(s.ErrMsg)}
	default:
		return s.fault(fmt.Sprintf("sluice_process returned status %d", status)), nil
	}
}

// Stop is what a runtime found out about why a guest call failed, for
// Classify.
type Stop struct {
	// TimedOut: the call ran past Limits.CallTimeout.
	TimedOut bool
	// RefusedBytes is the size a refused memory.grow asked for (0: none
	// was refused), LimitBytes the instance's memory limit.
	RefusedBytes, LimitBytes uint64
	// Exited: the guest called proc_exit with ExitCode.
	Exited   bool
	ExitCode uint32
	// Message is the runtime's message for a trap (only its first line is
	// kept; the rest is a stack trace).
	Message string
	// DeathLine is what a dying Go guest printed (sandbox.Stderr).
	DeathLine string
}

// Classify turns the failure err of the guest function name, called with
// the caller's ctx, into a Fault. A fault recorded by a host function
// wins; then the time limit, the caller's context, a refused memory.grow,
// an exit, and else a trap.
func (s *State) Classify(ctx context.Context, name string, err error, st Stop) *plugins.Fault {
	if s.Fault != nil {
		// A host function trapped the guest after recording s.Fault, and
		// err may wrap s.Fault: storing err in it would make the fault
		// wrap itself and send errors.Is/As into an endless loop.
		return s.Fault
	}
	f := &plugins.Fault{Instance: s.Name, Err: err}
	switch {
	case st.TimedOut:
		f.Kind = plugins.FaultTimeout
		f.Detail = fmt.Sprintf("%s ran longer than the call timeout of %s", name, s.Limits.CallTimeout)
	case ctx.Err() != nil:
		f.Kind = plugins.FaultTimeout
		f.Detail = fmt.Sprintf("%s stopped: the host's context is done (%v)", name, ctx.Err())
		f.Err = ctx.Err()
	case st.RefusedBytes != 0:
		f.Kind = plugins.FaultMemory
		f.Detail = fmt.Sprintf("%s tried to grow the guest's memory to %d bytes, over the limit of %d bytes",
			name, st.RefusedBytes, st.LimitBytes)
		if st.DeathLine != "" {
			f.Detail += " (guest: " + st.DeathLine + ")"
		}
	case st.Exited:
		f.Kind = plugins.FaultExit
		f.ExitCode = st.ExitCode
		f.Detail = fmt.Sprintf("%s: the guest exited with code %d", name, f.ExitCode)
		if st.DeathLine != "" {
			f.Detail += ": " + st.DeathLine
		}
	default:
		f.Kind = plugins.FaultTrap
		msg := st.Message
		if i := strings.IndexByte(msg, '\n'); i >= 0 {
			msg = msg[:i] // the rest is the wasm stack trace, kept in Err
		}
		f.Detail = name + ": " + msg
		if st.DeathLine != "" {
			// A Go guest that panics prints the panic, then traps.
			f.Detail += " (guest: " + st.DeathLine + ")"
		}
	}
	return f
}

// CallTimedOut reports whether a call that began at start is over the
// time limit, as a yield checks it.
func (s *State) CallTimedOut(start time.Time) bool {
	return time.Since(start) > s.Limits.CallTimeout
}

// PageSize is the size of a WebAssembly memory page.
const PageSize = 65536

// New is the State of a new instance of cfg, whose module's memory starts
// at minMemory bytes. It returns too the instance's memory limit in bytes
// (whole pages), or the fault of a module whose memory starts over it.
func New(cfg plugins.InstanceConfig, minMemory uint64) (State, uint64, *plugins.Fault) {
	limits := cfg.Limits.WithDefaults()
	limitBytes := limits.MemoryBytes &^ (PageSize - 1)
	if minMemory > limitBytes {
		return State{}, 0, &plugins.Fault{Kind: plugins.FaultMemory, Instance: cfg.Name,
			Detail: fmt.Sprintf("the module's memory starts at %d bytes, over the instance's limit of %d bytes", minMemory, limitBytes)}
	}
	return State{Name: cfg.Name, Host: cfg.Host, Limits: limits}, limitBytes, nil
}

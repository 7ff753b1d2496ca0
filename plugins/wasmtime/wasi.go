//go:build cgo && !nowasmtime

package wasmtime

import (
	"encoding/binary"
	"io"
	"io/fs"
	"path"
	"strings"

	"github.com/sluice-io/sluice/abi"
	"github.com/sluice-io/sluice/plugins/internal/modcheck"
	"github.com/sluice-io/sluice/plugins/internal/sandbox"
)

// WASI preview 1, implemented in Go with the behaviour of wazero's
// wasi_snapshot_preview1 as plugins/wazero configures it: no arguments, no
// environment, no preopened directories (so no files at all), an empty
// stdin, stdout and stderr to the instance's writers, the fake clocks and
// seeded randomness of package sandbox (shared with plugins/wazero).
// Every preview 1 function exists, so a module is accepted by both
// runtimes alike; the ones that need files or sockets fail with the errno
// wazero gives for the stdio descriptors or for a descriptor that is not
// open.

// WASI errno values.
const (
	errnoSuccess     = 0
	errnoBadf        = 8
	errnoFault       = 21
	errnoInval       = 28
	errnoIo          = 29
	errnoNametoolong = 37
	errnoNosys       = 52
	errnoNotdir      = 54
	errnoNotsup      = 58
	errnoPerm        = 63
)

// wasiFunc is one preview 1 function: its parameters ('i' for i32, 'I'
// for i64), whether it returns an errno (all but proc_exit) and its
// implementation.
type wasiFunc struct {
	params   string
	noResult bool
	fn       hostFunc
}

// wasiFuncs is the one table of the preview 1 functions the host
// provides; wasiSignatures is derived from it for validation (modcheck)
// and linking.
var wasiFuncs = map[string]wasiFunc{
	"args_get":                {params: "ii", fn: wasiArgsGet},
	"args_sizes_get":          {params: "ii", fn: wasiSizesGet},
	"environ_get":             {params: "ii", fn: wasiArgsGet},
	"environ_sizes_get":       {params: "ii", fn: wasiSizesGet},
	"clock_res_get":           {params: "ii", fn: wasiClockResGet},
	"clock_time_get":          {params: "iIi", fn: wasiClockTimeGet},
	"fd_advise":               {params: "iIIi", fn: wasiFdAdvise},
	"fd_allocate":             {params: "iII", fn: wasiFdNosys},
	"fd_close":                {params: "i", fn: wasiFdClose},
	"fd_datasync":             {params: "i", fn: wasiFdSync},
	"fd_fdstat_get":           {params: "ii", fn: wasiFdFdstatGet},
	"fd_fdstat_set_flags":     {params: "ii", fn: wasiFdFdstatSetFlags},
	"fd_fdstat_set_rights":    {params: "iII", fn: wasiNosys},
	"fd_filestat_get":         {params: "ii", fn: wasiFdFilestatGet},
	"fd_filestat_set_size":    {params: "iI", fn: wasiFdNosys},
	"fd_filestat_set_times":   {params: "iIIi", fn: wasiFdNosys},
	"fd_pread":                {params: "iiiIi", fn: wasiFdPread},
	"fd_prestat_dir_name":     {params: "iii", fn: wasiFdPrestatDirName},
	"fd_prestat_get":          {params: "ii", fn: wasiFdPrestatGet},
	"fd_pwrite":               {params: "iiiIi", fn: wasiFdPwrite},
	"fd_read":                 {params: "iiii", fn: wasiFdRead},
	"fd_readdir":              {params: "iiiIi", fn: wasiFdBadf},
	"fd_renumber":             {params: "ii", fn: wasiFdRenumber},
	"fd_seek":                 {params: "iIii", fn: wasiFdSeek},
	"fd_sync":                 {params: "i", fn: wasiFdSync},
	"fd_tell":                 {params: "ii", fn: wasiFdTell},
	"fd_write":                {params: "iiii", fn: wasiFdWrite},
	"path_create_directory":   {params: "iii", fn: wasiPath(0, 1, 2)},
	"path_filestat_get":       {params: "iiiii", fn: wasiPath(0, 2, 3)},
	"path_filestat_set_times": {params: "iiiiIIi", fn: wasiPath(0, 2, 3)},
	"path_link":               {params: "iiiiiii", fn: wasiPath(0, 2, 3, 4, 5, 6)},
	"path_open":               {params: "iiiiiIIii", fn: wasiPath(0, 2, 3)},
	"path_readlink":           {params: "iiiiii", fn: wasiPath(0, 1, 2)},
	"path_remove_directory":   {params: "iii", fn: wasiPath(0, 1, 2)},
	"path_rename":             {params: "iiiiii", fn: wasiPath(0, 1, 2, 3, 4, 5)},
	"path_symlink":            {params: "iiiii", fn: wasiPath(2, 3, 4)},
	"path_unlink_file":        {params: "iii", fn: wasiPath(0, 1, 2)},
	"poll_oneoff":             {params: "iiii", fn: wasiPollOneoff},
	"proc_exit":               {params: "i", noResult: true, fn: wasiProcExit},
	"proc_raise":              {params: "i", fn: wasiNosys},
	"random_get":              {params: "ii", fn: wasiRandomGet},
	"sched_yield":             {params: "", fn: wasiSchedYield},
	"sock_accept":             {params: "iii", fn: wasiFdBadf},
	"sock_recv":               {params: "iiiiii", fn: wasiFdBadf},
	"sock_send":               {params: "iiiii", fn: wasiFdBadf},
	"sock_shutdown":           {params: "ii", fn: wasiFdBadf},
}

var wasiSignatures = func() map[string]modcheck.Signature {
	sigs := make(map[string]modcheck.Signature, len(wasiFuncs))
	for name, f := range wasiFuncs {
		var sig modcheck.Signature
		sig.Params = []abi.ValType{}
		for _, p := range f.params {
			if p == 'I' {
				sig.Params = append(sig.Params, 0x7e)
			} else {
				sig.Params = append(sig.Params, 0x7f)
			}
		}
		sig.Results = []abi.ValType{}
		if !f.noResult {
			sig.Results = append(sig.Results, 0x7f)
		}
		sigs[name] = sig
	}
	return sigs
}()

// wasiMemory is the guest's memory for a WASI call.
func (in *instance) wasiMemory() []byte { return in.guestMemory() }

// stdioOpen reports whether fd is one of stdin, stdout and stderr and not
// closed: the only descriptors there are.
func (in *instance) stdioOpen(fd int32) bool {
	return fd >= 0 && fd <= 2 && !in.stdioClosed[fd]
}

func putU32(mem []byte, ptr uint32, v uint32) bool {
	b, ok := read(mem, ptr, 4)
	if ok {
		binary.LittleEndian.PutUint32(b, v)
	}
	return ok
}

func putU64(mem []byte, ptr uint32, v uint64) bool {
	b, ok := read(mem, ptr, 8)
	if ok {
		binary.LittleEndian.PutUint64(b, v)
	}
	return ok
}

func wasiNosys(*instance, []uint64) int32 { return errnoNosys }

// wasiFdNosys is for operations on a file descriptor that the stdio
// descriptors do not support.
func wasiFdNosys(in *instance, args []uint64) int32 {
	if !in.stdioOpen(s32(args[0])) {
		return errnoBadf
	}
	return errnoNosys
}

// wasiFdBadf is for operations on directories and sockets, which no
// descriptor is.
func wasiFdBadf(*instance, []uint64) int32 { return errnoBadf }

// wasiArgsGet serves args_get and environ_get: there are no values, but
// the buffers are checked as wazero does.
func wasiArgsGet(in *instance, args []uint64) int32 {
	mem := in.wasiMemory()
	if _, ok := read(mem, i32(args[0]), 0); !ok {
		return errnoFault
	}
	if _, ok := read(mem, i32(args[1]), 0); !ok {
		return errnoFault
	}
	return errnoSuccess
}

// wasiSizesGet serves args_sizes_get and environ_sizes_get: none.
func wasiSizesGet(in *instance, args []uint64) int32 {
	mem := in.wasiMemory()
	if !putU32(mem, i32(args[0]), 0) || !putU32(mem, i32(args[1]), 0) {
		return errnoFault
	}
	return errnoSuccess
}

func wasiClockResGet(in *instance, args []uint64) int32 {
	switch s32(args[0]) {
	case 0, 1: // realtime, monotonic
	default:
		return errnoInval
	}
	if !putU64(in.wasiMemory(), i32(args[1]), uint64(sandbox.ClockStep)) {
		return errnoFault
	}
	return errnoSuccess
}

func wasiClockTimeGet(in *instance, args []uint64) int32 {
	var v int64
	switch s32(args[0]) {
	case 0:
		v = in.clocks.WalltimeNanos()
	case 1:
		v = in.clocks.Nanotime()
	default:
		return errnoInval
	}
	if !putU64(in.wasiMemory(), i32(args[2]), uint64(v)) {
		return errnoFault
	}
	return errnoSuccess
}

func wasiFdAdvise(in *instance, args []uint64) int32 {
	if !in.stdioOpen(s32(args[0])) {
		return errnoBadf
	}
	if uint32(s32(args[3])) > 5 {
		return errnoInval
	}
	return errnoSuccess
}

func wasiFdClose(in *instance, args []uint64) int32 {
	fd := s32(args[0])
	if !in.stdioOpen(fd) {
		return errnoBadf
	}
	in.stdioClosed[fd] = true
	return errnoSuccess
}

// wasiFdSync serves fd_sync and fd_datasync, which succeed on stdio.
func wasiFdSync(in *instance, args []uint64) int32 {
	if !in.stdioOpen(s32(args[0])) {
		return errnoBadf
	}
	return errnoSuccess
}

// Rights of the stdio descriptors in wazero (fileRightsBase): everything a
// file may do (bits 0-8 and 21-23) plus poll_fd_readwrite.
const stdioRights = 0x1ff | 1<<21 | 1<<22 | 1<<23 | 1<<27

// stdioFiletype is what wazero reports for its stdio descriptors:
// filetype block_device (their mode is fs.ModeDevice).
const stdioFiletype = 1

func wasiFdFdstatGet(in *instance, args []uint64) int32 {
	buf, ok := read(in.wasiMemory(), i32(args[1]), 24)
	if !ok {
		return errnoFault
	}
	if !in.stdioOpen(s32(args[0])) {
		return errnoBadf
	}
	binary.LittleEndian.PutUint16(buf[0:], stdioFiletype)
	binary.LittleEndian.PutUint16(buf[2:], 0) // fdflags
	binary.LittleEndian.PutUint32(buf[4:], 0)
	binary.LittleEndian.PutUint64(buf[8:], stdioRights)
	binary.LittleEndian.PutUint64(buf[16:], 0)
	return errnoSuccess
}

func wasiFdFdstatSetFlags(in *instance, args []uint64) int32 {
	flags := uint16(s32(args[1]))
	const dsync, nonblock, rsync, sync = 2, 4, 8, 16
	if flags&(dsync|rsync|sync) != 0 {
		return errnoInval
	}
	if !in.stdioOpen(s32(args[0])) {
		return errnoBadf
	}
	if flags&nonblock != 0 {
		return errnoNosys
	}
	return errnoSuccess
}

func wasiFdFilestatGet(in *instance, args []uint64) int32 {
	buf, ok := read(in.wasiMemory(), i32(args[1]), 64)
	if !ok {
		return errnoFault
	}
	if !in.stdioOpen(s32(args[0])) {
		return errnoBadf
	}
	clear(buf)
	binary.LittleEndian.PutUint64(buf[16:], stdioFiletype)
	binary.LittleEndian.PutUint64(buf[24:], 1) // nlink
	return errnoSuccess
}

// fd_prestat_get and fd_prestat_dir_name: wazero treats the stdio
// descriptors as preopens that are not directories, which gives an empty
// name and success; there is nothing else.
func wasiFdPrestatGet(in *instance, args []uint64) int32 {
	if !in.stdioOpen(s32(args[0])) {
		return errnoBadf
	}
	if !putU64(in.wasiMemory(), i32(args[1]), 0) {
		return errnoFault
	}
	return errnoSuccess
}

func wasiFdPrestatDirName(in *instance, args []uint64) int32 {
	if !in.stdioOpen(s32(args[0])) {
		return errnoBadf
	}
	if i32(args[2]) > 0 {
		return errnoNametoolong
	}
	if _, ok := read(in.wasiMemory(), i32(args[1]), 0); !ok {
		return errnoFault
	}
	return errnoSuccess
}

func wasiFdRenumber(in *instance, args []uint64) int32 {
	if !in.stdioOpen(s32(args[0])) || !in.stdioOpen(s32(args[1])) {
		return errnoBadf
	}
	return errnoNotsup // stdio descriptors are preopens, which wazero does not renumber
}

func wasiFdSeek(in *instance, args []uint64) int32 {
	if !in.stdioOpen(s32(args[0])) {
		return errnoBadf
	}
	return errnoNosys
}

func wasiFdTell(in *instance, args []uint64) int32 {
	return wasiFdSeek(in, args)
}

// readv is wazero's: it fills the iovecs with reader until it returns
// less than asked.
func readv(mem []byte, iovs, count uint32, reader func([]byte) (int, int32)) (uint32, int32) {
	return iovecs(mem, iovs, count, reader, true)
}

// writev is wazero's: every iovec goes to writer, in order.
func writev(mem []byte, iovs, count uint32, writer func([]byte) (int, int32)) (uint32, int32) {
	return iovecs(mem, iovs, count, writer, false)
}

// iovecs passes the count iovecs at iovs to f in order and returns the
// bytes f took. Reading skips empty iovecs and stops after a short read.
func iovecs(mem []byte, iovs, count uint32, f func([]byte) (int, int32), reading bool) (uint32, int32) {
	var total uint32
	iovsBuf, ok := read(mem, iovs, count<<3)
	if !ok {
		return 0, errnoFault
	}
	for pos := uint32(0); pos < count<<3; pos += 8 {
		off := binary.LittleEndian.Uint32(iovsBuf[pos:])
		l := binary.LittleEndian.Uint32(iovsBuf[pos+4:])
		if reading && l == 0 {
			continue
		}
		b, ok := read(mem, off, l)
		if !ok {
			return 0, errnoFault
		}
		n, errno := f(b)
		total += uint32(n)
		if errno == errnoNosys {
			return 0, errnoBadf
		} else if errno != 0 {
			return 0, errno
		} else if reading && n < int(l) {
			break
		}
	}
	return total, errnoSuccess
}

// fdIO is fd_read, fd_pread, fd_write and fd_pwrite once the descriptor
// is checked: it passes the iovecs of args[1] and args[2] through io to f
// and stores how many bytes went at the pointer args[nArg].
func fdIO(in *instance, args []uint64, nArg int, io func([]byte, uint32, uint32, func([]byte) (int, int32)) (uint32, int32), f func([]byte) (int, int32)) int32 {
	mem := in.wasiMemory()
	n, errno := io(mem, i32(args[1]), i32(args[2]), f)
	if errno != 0 {
		return errno
	}
	if !putU32(mem, i32(args[nArg]), n) {
		return errnoFault
	}
	return errnoSuccess
}

func unsupportedIO([]byte) (int, int32) { return 0, errnoNosys }

// readStdin reads the empty stdin: end of file at once.
func readStdin([]byte) (int, int32) { return 0, errnoSuccess }

func writeTo(w io.Writer, b []byte) (int, int32) {
	n, err := w.Write(b)
	if err != nil {
		return n, errnoIo
	}
	return n, errnoSuccess
}

func wasiFdRead(in *instance, args []uint64) int32 {
	fd := s32(args[0])
	if !in.stdioOpen(fd) {
		return errnoBadf
	}
	reader := unsupportedIO
	if fd == 0 {
		reader = readStdin
	}
	return fdIO(in, args, 3, readv, reader)
}

func wasiFdPread(in *instance, args []uint64) int32 {
	if !in.stdioOpen(s32(args[0])) {
		return errnoBadf
	}
	return fdIO(in, args, 4, readv, unsupportedIO)
}

func (in *instance) writeStdout(b []byte) (int, int32) { return writeTo(in.stdout, b) }
func (in *instance) writeStderr(b []byte) (int, int32) { return writeTo(in.stderr, b) }

func wasiFdWrite(in *instance, args []uint64) int32 {
	fd := s32(args[0])
	if !in.stdioOpen(fd) {
		return errnoBadf
	}
	var writer func([]byte) (int, int32)
	switch fd {
	case 1:
		writer = in.writeStdout
	case 2:
		writer = in.writeStderr
	default:
		writer = unsupportedIO
	}
	return fdIO(in, args, 3, writev, writer)
}

func wasiFdPwrite(in *instance, args []uint64) int32 {
	if !in.stdioOpen(s32(args[0])) {
		return errnoBadf
	}
	return fdIO(in, args, 4, writev, unsupportedIO)
}

// wasiPath serves the path_* functions. Each names its directory
// descriptor and path by argument index (dir, ptr, len, and for two-path
// functions a second triple); the paths are checked as wazero's atPath
// does — EFAULT, then EPERM for a path that escapes, then EBADF or
// ENOTDIR for the descriptor — and since no descriptor is a directory,
// that is where every call ends.
func wasiPath(idx ...int) hostFunc {
	return func(in *instance, args []uint64) int32 {
		mem := in.wasiMemory()
		for i := 0; i+2 < len(idx); i += 3 {
			if errno := in.atPath(mem, s32(args[idx[i]]), i32(args[idx[i+1]]), i32(args[idx[i+2]])); errno != 0 {
				return errno
			}
		}
		return errnoNosys
	}
}

func (in *instance) atPath(mem []byte, fd int32, ptr, n uint32) int32 {
	b, ok := read(mem, ptr, n)
	if !ok {
		return errnoFault
	}
	name := strings.TrimSuffix(path.Clean(string(b)), "/")
	if !fs.ValidPath(name) {
		return errnoPerm
	}
	if !in.stdioOpen(fd) {
		return errnoBadf
	}
	return errnoNotdir
}

// wasiPollOneoff is wazero's poll_oneoff over the stdio descriptors:
// clock subscriptions fire at once (sleeping takes no time), stdin is
// always readable (at end of file), writes to stdio are not supported as
// events, and other descriptors are not open.
func wasiPollOneoff(in *instance, args []uint64) int32 {
	inPtr, outPtr, nsubs, neventsPtr := i32(args[0]), i32(args[1]), i32(args[2]), i32(args[3])
	if nsubs == 0 {
		return errnoInval
	}
	mem := in.wasiMemory()
	inBuf, ok := read(mem, inPtr, nsubs*48)
	if !ok {
		return errnoFault
	}
	outBuf, ok := read(mem, outPtr, nsubs*32)
	clear(outBuf)
	if !ok {
		return errnoFault
	}
	if !putU32(mem, neventsPtr, nsubs) {
		return errnoFault
	}
	type event struct {
		userData  []byte
		eventType byte
		errno     uint16
	}
	write := func(at uint32, e event) {
		b := outBuf[at*32:]
		copy(b, e.userData)
		b[8] = byte(e.errno)
		b[9] = 0
		binary.LittleEndian.PutUint32(b[10:], uint32(e.eventType))
	}
	nevents := uint32(0)
	var stdinSubs []event
	for i := uint32(0); i < nsubs; i++ {
		sub := inBuf[i*48:]
		e := event{userData: sub[:8], eventType: sub[8]}
		arg := sub[16:]
		switch e.eventType {
		case 0: // clock
			switch binary.LittleEndian.Uint16(arg[24:]) {
			case 0: // relative
			case 1: // absolute
				return errnoNotsup
			default:
				return errnoInval
			}
			write(nevents, e)
			nevents++
		case 1: // fd_read
			fd := int32(binary.LittleEndian.Uint32(arg))
			if fd < 0 {
				return errnoBadf
			}
			if !in.stdioOpen(fd) {
				e.errno = errnoBadf
				write(nevents, e)
				nevents++
			} else {
				stdinSubs = append(stdinSubs, e)
			}
		case 2: // fd_write
			fd := int32(binary.LittleEndian.Uint32(arg))
			if fd < 0 {
				return errnoBadf
			}
			if in.stdioOpen(fd) {
				e.errno = errnoNotsup
			} else {
				e.errno = errnoBadf
			}
			write(nevents, e)
			nevents++
		default:
			return errnoInval
		}
	}
	if nevents == nsubs {
		return errnoSuccess
	}
	if !in.stdioOpen(0) {
		return errnoBadf
	}
	// wazero's stdin is always ready (it does not poll a reader).
	for _, e := range stdinSubs {
		e.errno = 0
		write(nevents, e)
		nevents++
	}
	return errnoSuccess
}

func wasiProcExit(in *instance, args []uint64) int32 {
	in.exited = true
	in.exitCode = i32(args[0])
	panic(trapSignal{"proc_exit"})
}

func wasiRandomGet(in *instance, args []uint64) int32 {
	b, ok := read(in.wasiMemory(), i32(args[0]), i32(args[1]))
	if !ok {
		return errnoFault
	}
	if _, err := io.ReadAtLeast(in.rand, b, len(b)); err != nil {
		return errnoIo
	}
	return errnoSuccess
}

func wasiSchedYield(*instance, []uint64) int32 { return errnoSuccess }

//go:build wasip1

// Command stateall is a test operator that exercises every state host
// function, including the buffer-too-small paths. Each record's value is a
// command; the operator emits one record per command (key = the record's
// key) whose value is the result as text, so a test can compare it:
//
//	put K V          -> "put K: CODE"
//	get K CAP        -> "get K: RET" and " VALUE" when RET fits CAP
//	del K            -> "del K: CODE"
//	scan S E CAP     -> "scan: RET k=v k=v..." or "scan: -5 needed=N" (one call)
//	scanall S E CAP  -> "scanall: k=v k=v | k=v..." (pages until 0 or an error)
//	open NAME        -> "open NAME: RET"
//	badstore         -> "badstore: RET" (state_get on handle 99)
//
// "-" stands for an empty argument (E "-" = no upper bound). CAP is the
// guest buffer's size in bytes.
package main

import (
	"encoding/binary"
	"strconv"
	"strings"

	"github.com/sluice-io/sluice/abi"
	"github.com/sluice-io/sluice/internal/testguests/raw"
)

func main() {}

var (
	out   raw.Out
	store int32
)

//go:wasmexport sluice_alloc
func sluiceAlloc(size uint32) uint32 { return raw.Alloc(size) }

//go:wasmexport sluice_init
func sluiceInit(p, n uint32) int32 {
	raw.CheckVersion()
	store = raw.StoreOpen("s")
	return abi.StatusOK
}

func arg(args []string, i int) []byte {
	if i >= len(args) || args[i] == "-" {
		return []byte{}
	}
	return []byte(args[i])
}

func num(args []string, i int) int {
	if i >= len(args) {
		return 0
	}
	n, _ := strconv.Atoi(args[i])
	return n
}

func itoa(n int32) string { return strconv.Itoa(int(n)) }

// scanPage renders one state_scan result.
func scanPage(b []byte) string {
	var sr abi.ScanReader
	sr.Reset(b)
	var s []string
	for {
		k, v, ok := sr.Next()
		if !ok {
			break
		}
		s = append(s, string(k)+"="+string(v))
	}
	if err := sr.Err(); err != nil {
		s = append(s, "ERROR "+err.Error())
	}
	return strings.Join(s, " ")
}

func run(cmd string) string {
	args := strings.Fields(cmd)
	if len(args) == 0 {
		return "empty command"
	}
	switch args[0] {
	case "put":
		return "put " + args[1] + ": " + itoa(raw.StatePut(store, arg(args, 1), arg(args, 2)))
	case "get":
		buf := make([]byte, num(args, 2))
		ret := raw.StateGet(store, arg(args, 1), buf)
		s := "get " + args[1] + ": " + itoa(ret)
		if ret >= 0 && int(ret) <= len(buf) {
			s += " " + string(buf[:ret])
		}
		return s
	case "del":
		return "del " + args[1] + ": " + itoa(raw.StateDelete(store, arg(args, 1)))
	case "scan":
		buf := make([]byte, num(args, 3))
		ret := raw.StateScan(store, arg(args, 1), arg(args, 2), buf)
		switch {
		case ret == int32(abi.ErrBufferTooSmall) && len(buf) >= 4:
			return "scan: " + itoa(ret) + " needed=" + strconv.Itoa(int(binary.LittleEndian.Uint32(buf)))
		case ret < 0:
			return "scan: " + itoa(ret)
		}
		return strings.TrimSpace("scan: " + itoa(ret) + " " + scanPage(buf[:ret]))
	case "scanall":
		buf := make([]byte, num(args, 3))
		start, end := arg(args, 1), arg(args, 2)
		var pages []string
		for {
			ret := raw.StateScan(store, start, end, buf)
			if ret == 0 {
				break
			}
			if ret < 0 {
				s := "code=" + itoa(ret)
				if ret == int32(abi.ErrBufferTooSmall) && len(buf) >= 4 {
					s += " needed=" + strconv.Itoa(int(binary.LittleEndian.Uint32(buf)))
				}
				pages = append(pages, s)
				break
			}
			pages = append(pages, scanPage(buf[:ret]))
			// Continue after the page's last key.
			var sr abi.ScanReader
			sr.Reset(buf[:ret])
			var last []byte
			for {
				k, _, ok := sr.Next()
				if !ok {
					break
				}
				last = k
			}
			start = append(append([]byte{}, last...), 0)
		}
		return "scanall: " + strings.Join(pages, " | ")
	case "open":
		return "open " + args[1] + ": " + itoa(raw.StoreOpen(args[1]))
	case "badstore":
		return "badstore: " + itoa(raw.StateGet(99, []byte("k"), make([]byte, 8)))
	}
	return "unknown command " + args[0]
}

//go:wasmexport sluice_process
func sluiceProcess(p, n uint32) int32 {
	raw.ForEach(p, n, func(i int, r *abi.Record) bool {
		out.Add(&abi.Output{Partition: abi.PartitionByKey, Timestamp: abi.TimestampInherit, Key: r.Key, Value: []byte(run(string(r.Value)))})
		return true
	})
	if c := out.Flush(); c != 0 {
		raw.Log(abi.LevelError, "emit: "+abi.Code(c).String())
		return 2
	}
	return abi.StatusOK
}

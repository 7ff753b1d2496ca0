//go:build !wasip1

package sluice

// Native builds have no Wasm imports or exports: host calls go to the
// in-process host installed in hostbridge.Current (package sdktest), and the
// export functions are registered in hostbridge.Guest for it to call.

import (
	"fmt"
	"os"

	"github.com/sluice-io/sluice/abi"
	"github.com/sluice-io/sluice/sdk/go/internal/hostbridge"
)

func init() {
	hostbridge.Guest = &hostbridge.Exports{
		Alloc:   alloc,
		Init:    initOperator,
		Process: process,
		Reset:   resetStores,
	}
}

func checkABIVersion() {}

// noHost is the answer to host calls made outside a harness: operators run
// inside sluice, or natively under package sdktest.
const noHost = int32(abi.ErrInternal)

func hostEmit(batch []byte) int32 {
	if h := hostbridge.Current; h != nil {
		return h.Emit(batch)
	}
	return noHost
}

func hostStoreOpen(name string) int32 {
	if h := hostbridge.Current; h != nil {
		return h.StoreOpen(name)
	}
	return noHost
}

func hostStateGet(store int32, key, buf []byte) int32 {
	if h := hostbridge.Current; h != nil {
		return h.StateGet(store, key, buf)
	}
	return noHost
}

func hostStatePut(store int32, key, value []byte) int32 {
	if h := hostbridge.Current; h != nil {
		return h.StatePut(store, key, value)
	}
	return noHost
}

func hostStateDelete(store int32, key []byte) int32 {
	if h := hostbridge.Current; h != nil {
		return h.StateDelete(store, key)
	}
	return noHost
}

func hostStateScan(store int32, start, end, buf []byte) int32 {
	if h := hostbridge.Current; h != nil {
		return h.StateScan(store, start, end, buf)
	}
	return noHost
}

func hostLog(level int32, msg string) {
	if h := hostbridge.Current; h != nil {
		h.Log(level, msg)
		return
	}
	fmt.Fprintf(os.Stderr, "sluice [%s] %s\n", Level(level), msg)
}

func hostStreamTime() int64 {
	if h := hostbridge.Current; h != nil {
		return h.StreamTime()
	}
	return -1
}

func hostSetError(index int32, msg string) {
	if h := hostbridge.Current; h != nil {
		h.SetError(index, msg)
	}
}

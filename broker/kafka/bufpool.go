package kafka

import (
	"math/bits"
	"sync"
)

// Buffers for request frames and encoded responses come from size-classed
// pools: a produce request or fetch response is often hundreds of KiB, and
// allocating one per request would make the garbage collector the bottleneck
// of the produce path. Classes are powers of two from 4 KiB to 16 MiB; larger
// buffers are allocated and dropped, so one huge request does not pin memory.
const (
	minBufShift = 12 // 4 KiB
	maxBufShift = 24 // 16 MiB
)

var bufPools [maxBufShift - minBufShift + 1]sync.Pool

// getBuf returns a buffer of length n whose capacity is the size class of n.
func getBuf(n int) *[]byte {
	c := bufClass(n)
	if c < 0 {
		b := make([]byte, n)
		return &b
	}
	if v := bufPools[c].Get(); v != nil {
		bp := v.(*[]byte)
		*bp = (*bp)[:n]
		return bp
	}
	b := make([]byte, n, 1<<(c+minBufShift))
	return &b
}

// putBuf returns a buffer from getBuf to its pool. The caller must not use
// it afterwards.
func putBuf(bp *[]byte) {
	c := cap(*bp)
	if c&(c-1) != 0 { // not one of ours (grown by append past its class)
		return
	}
	idx := bits.TrailingZeros(uint(c)) - minBufShift
	if idx < 0 || idx >= len(bufPools) {
		return
	}
	*bp = (*bp)[:0]
	bufPools[idx].Put(bp)
}

// bufClass is the index of the smallest class holding n bytes, or -1 if n is
// larger than the largest class.
func bufClass(n int) int {
	if n <= 1<<minBufShift {
		return 0
	}
	shift := bits.Len(uint(n - 1))
	if shift > maxBufShift {
		return -1
	}
	return shift - minBufShift
}

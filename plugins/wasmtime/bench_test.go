//go:build cgo && !nowasmtime

package wasmtime

import (
	"testing"

	"github.com/sluice-io/sluice/plugins/runtimetest"
)

// The benchmarks are runtimetest's, shared with the other runtime so that
// the numbers compare.

func BenchmarkProcess(b *testing.B)      { runtimetest.BenchProcess(b, testRuntime(b)) }
func BenchmarkHostCall(b *testing.B)     { runtimetest.BenchHostCall(b, testRuntime(b)) }
func BenchmarkCallOverhead(b *testing.B) { runtimetest.BenchCallOverhead(b, testRuntime(b)) }

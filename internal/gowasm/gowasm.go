// Package gowasm compiles Go operator packages to WebAssembly with Go's own
// toolchain (GOOS=wasip1 GOARCH=wasm, -buildmode=c-shared so the module is
// a WASI reactor whose //go:wasmexport functions the host calls). It backs
// `sluice build` for Go and lets tests build their guest modules from
// source instead of depending on committed binaries.
package gowasm

import (
	"bytes"
	"context"
	"fmt"
	"github.com/sluice-io/sluice/internal/wasmbuild"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Build compiles the Go main package in dir to the file out (stripped,
// -trimpath, so the output depends only on the sources and the Go
// version). The go command's own build cache makes repeated builds cheap.
func Build(ctx context.Context, dir, out string) error {
	absOut, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("building a Go operator needs the go command (https://go.dev/dl): %w", err)
	}
	cmd := exec.CommandContext(ctx, goBin, "build", "-buildmode=c-shared", "-trimpath",
		"-ldflags=-s -w -buildid=", "-o", absOut, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Stdout = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s (GOOS=wasip1 GOARCH=wasm): %v\n%s", dir, err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

var builds wasmbuild.Memo

// MustBuild builds dir into a temporary file and returns the module's
// bytes, memoized per process so that many tests can share one build. It
// panics on failure: it is for tests, which call it with known sources.
func MustBuild(dir string) []byte {
	wasm, err := BuildBytes(dir)
	if err != nil {
		panic(err)
	}
	return wasm
}

// BuildBytes is MustBuild returning the error.
func BuildBytes(dir string) ([]byte, error) { return builds.Bytes(dir, Build) }

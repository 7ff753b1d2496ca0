// Package aswasm compiles AssemblyScript operators to WebAssembly with asc
// against the AssemblyScript SDK in sdk/assemblyscript. It backs `sluice
// build` for AssemblyScript and lets tests build AssemblyScript guest
// modules from source, as packages cwasm and rustwasm do for C and Rust.
//
// The toolchain is node on PATH and the AssemblyScript compiler pinned by
// sdk/assemblyscript/package.json, installed (with no network access
// during builds: the build only says how) by
//
//	npm install --prefix sdk/assemblyscript
//
// The asc used is $SLUICE_ASC if set, else
// sdk/assemblyscript/node_modules/.bin/asc.
package aswasm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/sluice-io/sluice/internal/wasmbuild"
)

// InstallHint is the command, run from the repository root, that installs
// the AssemblyScript compiler.
const InstallHint = "npm install --prefix sdk/assemblyscript"

// ToolchainError says that part of the AssemblyScript toolchain is missing
// and how to install it.
type ToolchainError struct {
	Missing string // what is missing, e.g. "asc (sdk/assemblyscript/node_modules/.bin/asc)"
	Detail  string // optional: the compiler's output
}

func (e *ToolchainError) Error() string {
	msg := fmt.Sprintf("building an AssemblyScript operator needs node, npm and the AssemblyScript compiler (asc) of sdk/assemblyscript; missing: %s. Install node and npm (e.g. apt-get install nodejs npm), then run, from the sluice repository: %s (or point SLUICE_ASC at an asc)", e.Missing, InstallHint)
	if e.Detail != "" {
		msg += "\n" + e.Detail
	}
	return msg
}

// FindSDK returns the directory of the AssemblyScript SDK
// (sdk/assemblyscript, holding package.json and assembly/index.ts) for the
// operator in dir: the first found walking up from dir, then from the
// current directory.
func FindSDK(dir string) (string, error) {
	sdk, err := wasmbuild.FindSDK(dir, "assemblyscript", "package.json", filepath.Join("assembly", "index.ts"))
	if err != nil || sdk != "" {
		return sdk, err
	}
	return "", fmt.Errorf("%s: cannot find the sluice AssemblyScript SDK (sdk/assemblyscript/package.json and assembly/index.ts) in a parent of it or of the current directory; run sluice build from within the sluice repository", dir)
}

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir()
}

// Asc returns the asc to use for the SDK in sdk: $SLUICE_ASC or
// sdk/node_modules/.bin/asc.
func Asc(sdk string) string {
	if a := os.Getenv("SLUICE_ASC"); a != "" {
		return a
	}
	return filepath.Join(sdk, "node_modules", ".bin", "asc")
}

// check returns a *ToolchainError when node or asc is missing.
func check(sdk string) error {
	if _, err := exec.LookPath("node"); err != nil {
		return &ToolchainError{Missing: "node (not on PATH)"}
	}
	asc := Asc(sdk)
	if _, err := exec.LookPath(asc); err != nil {
		return &ToolchainError{Missing: "asc (" + asc + ")"}
	}
	return nil
}

// CheckToolchain returns a *ToolchainError when node or asc is missing
// (the SDK is looked for from the current directory), and nil when a build
// can be tried.
func CheckToolchain(ctx context.Context) error {
	sdk, err := FindSDK(".")
	if err != nil {
		if a := os.Getenv("SLUICE_ASC"); a != "" {
			return check("")
		}
		return &ToolchainError{Missing: "the SDK (sdk/assemblyscript)", Detail: err.Error()}
	}
	return check(sdk)
}

// Entry returns the operator's entry file in dir: assembly/index.ts, else
// index.ts.
func Entry(dir string) (string, error) {
	for _, e := range []string{filepath.Join("assembly", "index.ts"), "index.ts"} {
		if fileExists(filepath.Join(dir, e)) {
			return e, nil
		}
	}
	return "", fmt.Errorf("%s: no assembly/index.ts or index.ts; an AssemblyScript operator's entry file registers its handler with setHandler and re-exports sluice_alloc, sluice_init and sluice_process from the SDK (see sdk/assemblyscript)", dir)
}

// Command returns asc's arguments, run in the operator's directory absDir,
// to compile its entry file to absOut: optimized (-O3), the incremental
// runtime (GC), and the SDK's sluiceAbort as abort, so that the module
// imports nothing but sluice_v1. Paths in the module (abort messages) are
// relative to absDir.
func Command(absDir, sdk, entry, absOut string) ([]string, error) {
	rel, err := filepath.Rel(absDir, sdk)
	if err != nil {
		return nil, err
	}
	abort := filepath.ToSlash(filepath.Join(rel, "assembly", "index")) + "/sluiceAbort"
	return []string{
		filepath.ToSlash(entry),
		"--outFile", absOut,
		"--optimizeLevel", "3", "--shrinkLevel", "0",
		"--runtime", "incremental",
		"--use", "abort=" + abort,
		"--noColors",
	}, nil
}

// Build compiles the AssemblyScript operator in dir (its assembly/index.ts
// or index.ts, written against sdk/assemblyscript) to the file out. The
// output is reproducible: asc is deterministic and the module holds only
// paths relative to dir.
func Build(ctx context.Context, dir, out string) error {
	absDir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	absOut, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	entry, err := Entry(absDir)
	if err != nil {
		return err
	}
	sdk, err := FindSDK(absDir)
	if err != nil {
		return err
	}
	if err := check(sdk); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "sluice-aswasm-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	tmpOut := filepath.Join(tmp, "op.wasm")
	args, err := Command(absDir, sdk, entry, tmpOut)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, Asc(sdk), args...)
	cmd.Dir = absDir
	var output bytes.Buffer
	cmd.Stdout = &output
	cmd.Stderr = &output
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: asc: %v\n%s", dir, err, strings.TrimSpace(output.String()))
	}
	data, err := os.ReadFile(tmpOut)
	if err != nil {
		return err
	}
	return os.WriteFile(absOut, data, 0o644)
}

var builds wasmbuild.Memo

// BuildBytes builds dir into a temporary file and returns the module's
// bytes, memoized per process so that tests can share one build.
func BuildBytes(dir string) ([]byte, error) { return builds.Bytes(dir, Build) }

// IsToolchainError reports whether err says the toolchain is missing.
func IsToolchainError(err error) bool {
	var te *ToolchainError
	return errors.As(err, &te)
}

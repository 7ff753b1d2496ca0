// Package cwasm compiles C operators to WebAssembly with clang (target
// wasm32-wasi, WASI reactor) against the C SDK in sdk/c. It backs `sluice
// build` for C and lets tests build C guest modules from source, as
// package gowasm does for Go.
//
// The toolchain is clang with lld's wasm-ld, wasi-libc as the sysroot
// (/usr, as Debian installs it: /usr/lib/wasm32-wasi/libc.a) and the
// compiler-rt builtins for wasm32. On Debian 12 and Ubuntu:
//
//	apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32
package cwasm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/sluice-io/sluice/internal/wasmbuild"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// InstallHint is the command that installs the toolchain on Debian and
// Ubuntu.
const InstallHint = "apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32"

// Sysroot is the WASI sysroot passed to clang. Debian's wasi-libc puts
// its headers under /usr/include/wasm32-wasi and libc.a under
// /usr/lib/wasm32-wasi, which clang finds with --sysroot=/usr.
const Sysroot = "/usr"

// sysrootLibc is the file whose absence means wasi-libc is missing.
var sysrootLibc = filepath.Join(Sysroot, "lib", "wasm32-wasi", "libc.a")

// ToolchainError says that part of the C toolchain is missing and how to
// install it.
type ToolchainError struct {
	Missing string // what is missing, e.g. "clang (not on PATH)"
	Detail  string // optional: the compiler's output
}

func (e *ToolchainError) Error() string {
	msg := fmt.Sprintf("building a C operator needs clang, wasm-ld, the wasi-libc sysroot and the wasm32 compiler-rt builtins; missing: %s. Install them with: %s", e.Missing, InstallHint)
	if e.Detail != "" {
		msg += "\n" + e.Detail
	}
	return msg
}

// CheckToolchain returns a *ToolchainError when clang, wasm-ld, the WASI
// sysroot or the wasm32 builtins library is missing, and nil when a build
// can be tried.
func CheckToolchain(ctx context.Context) error {
	clang, err := exec.LookPath("clang")
	if err != nil {
		return &ToolchainError{Missing: "clang (not on PATH)"}
	}
	if _, err := exec.LookPath("wasm-ld"); err != nil {
		// clang also looks next to itself.
		if _, err2 := os.Stat(filepath.Join(filepath.Dir(clang), "wasm-ld")); err2 != nil {
			return &ToolchainError{Missing: "wasm-ld (from lld, not on PATH)"}
		}
	}
	if _, err := os.Stat(sysrootLibc); err != nil {
		return &ToolchainError{Missing: "the WASI sysroot (" + sysrootLibc + ", from wasi-libc)"}
	}
	out, err := exec.CommandContext(ctx, clang, "--target=wasm32-wasi", "-print-libgcc-file-name").Output()
	if err != nil {
		return &ToolchainError{Missing: "a clang that targets wasm32-wasi", Detail: err.Error()}
	}
	builtins := strings.TrimSpace(string(out))
	if _, err := os.Stat(builtins); err != nil {
		return &ToolchainError{Missing: "the wasm32 compiler-rt builtins (" + builtins + ")"}
	}
	return nil
}

// FindSDK returns the directory holding the C SDK (sluice.h and sluice.c)
// for the operator in dir: the first sdk/c with both files found walking
// up from dir, then walking up from the current directory (sluice build
// runs from within the repository). It returns "" when dir vendors the SDK
// itself (has its own sluice.c): then only dir's files are compiled.
func FindSDK(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	if fileExists(filepath.Join(abs, "sluice.c")) {
		return "", nil
	}
	sdk, err := wasmbuild.FindSDK(dir, "c", "sluice.h", "sluice.c")
	if err != nil || sdk != "" {
		return sdk, err
	}
	return "", fmt.Errorf("%s: cannot find the sluice C SDK (sdk/c/sluice.h and sluice.c) in a parent of it or of the current directory; run sluice build from within the sluice repository, or copy sluice.h and sluice.c into %s", dir, dir)
}

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir()
}

var includesSDK = regexp.MustCompile(`(?m)^\s*#\s*include\s*[<"]sluice\.h[">]`)

// Sources returns the .c files of dir (names relative to dir, sorted) and
// checks that one of them includes sluice.h.
func Sources(dir string) ([]string, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.c"))
	if err != nil {
		return nil, err
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("%s: no .c files", dir)
	}
	sort.Strings(paths)
	var names []string
	uses := false
	for _, p := range paths {
		names = append(names, filepath.Base(p))
		if filepath.Base(p) == "sluice.c" {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		uses = uses || includesSDK.Match(b)
	}
	if !uses {
		return nil, fmt.Errorf(`%s: none of its .c files includes "sluice.h"; a C operator is written against the C SDK (sdk/c)`, dir)
	}
	return names, nil
}

// Command returns clang's arguments (without "clang") to build the
// operator in absDir, run in absDir, to absOut.
func Command(absDir, sdk string, sources []string, absOut string) []string {
	args := []string{
		"--target=wasm32-wasi", "--sysroot=" + Sysroot, "-O2", "-mexec-model=reactor",
		"-Wl,--strip-all",
		// memcpy and memset of known size become memory.copy and
		// memory.fill (bulk memory, which ABI v1 allows) instead of byte
		// loops in wasm: about a quarter of a pass-through's guest time.
		"-mbulk-memory",
		// A 1 MiB stack (wasm-ld's default is 64 KiB) placed first in
		// memory, so that an overflow traps (the address wraps past 0)
		// instead of silently overwriting static data.
		"-Wl,-z,stack-size=1048576", "-Wl,--stack-first",
		// No paths in the module (__FILE__, debug info), so that it
		// depends only on the sources and the toolchain.
		"-ffile-prefix-map=" + absDir + "=.", "-fdebug-prefix-map=" + absDir + "=.",
		"-I", ".",
	}
	if sdk != "" {
		args = append(args, "-ffile-prefix-map="+sdk+"=sdk/c", "-fdebug-prefix-map="+sdk+"=sdk/c", "-I", sdk)
	}
	args = append(args, "-o", absOut)
	args = append(args, sources...)
	if sdk != "" {
		args = append(args, filepath.Join(sdk, "sluice.c"))
	}
	return args
}

// Build compiles the C operator in dir (its .c files, plus the SDK's
// sluice.c unless dir has its own) to the file out. The output is
// reproducible: stripped, with no paths in it.
func Build(ctx context.Context, dir, out string) error {
	absDir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	absOut, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	sources, err := Sources(absDir)
	if err != nil {
		return err
	}
	if err := CheckToolchain(ctx); err != nil {
		return err
	}
	sdk, err := FindSDK(absDir)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "clang", Command(absDir, sdk, sources, absOut)...)
	cmd.Dir = absDir
	var output bytes.Buffer
	cmd.Stdout = &output
	cmd.Stderr = &output
	if err := cmd.Run(); err != nil {
		text := strings.TrimSpace(output.String())
		if missing := missingPiece(text); missing != "" {
			return &ToolchainError{Missing: missing, Detail: text}
		}
		return fmt.Errorf("clang (wasm32-wasi) in %s: %v\n%s", dir, err, text)
	}
	return nil
}

// missingPiece recognizes compiler output that means part of the
// toolchain is missing rather than an error in the sources.
func missingPiece(out string) string {
	switch {
	case strings.Contains(out, "libclang_rt.builtins-wasm32"):
		return "the wasm32 compiler-rt builtins"
	case strings.Contains(out, `Executable "wasm-ld`): // `Executable "wasm-ld-14" doesn't exist!`
		// clang's words when it cannot run the linker (not wasm-ld's own
		// errors, such as an output file it cannot create).
		return "wasm-ld (from lld)"
	case strings.Contains(out, "unable to find library -lc"), strings.Contains(out, "crt1-reactor.o"),
		strings.Contains(out, "'stdlib.h' file not found"), strings.Contains(out, "'stdint.h' file not found"),
		strings.Contains(out, "'string.h' file not found"):
		return "the WASI sysroot (wasi-libc)"
	}
	return ""
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

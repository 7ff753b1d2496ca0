// Package rustwasm compiles Rust operators to WebAssembly with rustc
// (target wasm32-wasi, a WASI reactor: a cdylib with no _start) against the
// Rust SDK in sdk/rust. It backs `sluice build` for Rust and lets tests
// build Rust guest modules from source, as package cwasm does for C.
//
// The toolchain is a rustc with the standard library of the WASI preview
// 1 target (wasm32-wasi, renamed wasm32-wasip1 in newer Rust). Cargo is
// not used, so that no registry is needed: the SDK is compiled as an rlib,
// then the operator's src/lib.rs as a cdylib linked against it. The rustc
// is $SLUICE_RUSTC if set, else the first of /usr/bin/rustc (Debian's) and
// the rustc on PATH (rustup's) that has the target. On Debian 12 and
// Ubuntu:
//
//	apt-get install rustc libstd-rust-dev-wasm32
//
// With rustup: rustup target add wasm32-wasip1.
package rustwasm

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

// InstallHint is the command that installs the toolchain on Debian and
// Ubuntu.
const InstallHint = "apt-get install rustc libstd-rust-dev-wasm32"

// DefaultRustc is the first rustc tried when $SLUICE_RUSTC is not set.
const DefaultRustc = "/usr/bin/rustc"

// Targets are the names of the WASI preview 1 target, in the order they
// are tried: wasm32-wasi until Rust 1.78 (Debian 12's rustc 1.63 has only
// that one), wasm32-wasip1 since (the only one from Rust 1.84 on).
var Targets = []string{"wasm32-wasi", "wasm32-wasip1"}

// Toolchain is a rustc and the WASI target whose standard library it has.
type Toolchain struct {
	Rustc  string
	Target string
}

// ToolchainError says that part of the Rust toolchain is missing and how
// to install it.
type ToolchainError struct {
	Missing string // what is missing, e.g. "rustc (/usr/bin/rustc)"
	Detail  string // optional: the compiler's output
}

func (e *ToolchainError) Error() string {
	msg := fmt.Sprintf("building a Rust operator needs rustc with the wasm32-wasi (or wasm32-wasip1) standard library; missing: %s. Install them with: %s, or with rustup: rustup target add wasm32-wasip1 (SLUICE_RUSTC picks the rustc)", e.Missing, InstallHint)
	if e.Detail != "" {
		msg += "\n" + e.Detail
	}
	return msg
}

// rustcCandidates are the rustc binaries tried in order: $SLUICE_RUSTC
// alone if set; else Debian's, then the one on PATH (a rustup toolchain
// has the WASI target once `rustup target add wasm32-wasip1` ran).
func rustcCandidates() []string {
	if r := os.Getenv("SLUICE_RUSTC"); r != "" {
		return []string{r}
	}
	candidates := []string{DefaultRustc}
	if p, err := exec.LookPath("rustc"); err == nil && p != DefaultRustc {
		candidates = append(candidates, p)
	}
	return candidates
}

// FindToolchain returns the first rustc that has a WASI target's standard
// library, or a *ToolchainError saying what is missing.
func FindToolchain(ctx context.Context) (Toolchain, error) {
	var first error
	for _, rustc := range rustcCandidates() {
		tc, err := probe(ctx, rustc)
		if err == nil {
			return tc, nil
		}
		if first == nil {
			first = err
		}
	}
	return Toolchain{}, first
}

func probe(ctx context.Context, rustc string) (Toolchain, error) {
	if _, err := exec.LookPath(rustc); err != nil {
		return Toolchain{}, &ToolchainError{Missing: "rustc (" + rustc + ")"}
	}
	out, err := exec.CommandContext(ctx, rustc, "--print", "sysroot").Output()
	if err != nil {
		return Toolchain{}, &ToolchainError{Missing: "a working rustc (" + rustc + ")", Detail: err.Error()}
	}
	rustlib := filepath.Join(strings.TrimSpace(string(out)), "lib", "rustlib")
	for _, target := range Targets {
		if fi, err := os.Stat(filepath.Join(rustlib, target)); err == nil && fi.IsDir() {
			return Toolchain{Rustc: rustc, Target: target}, nil
		}
	}
	return Toolchain{}, &ToolchainError{Missing: fmt.Sprintf("the %s standard library of %s (%s/%s, from libstd-rust-dev-wasm32)",
		strings.Join(Targets, " or "), rustc, rustlib, Targets[0])}
}

// CheckToolchain returns a *ToolchainError when no rustc with a WASI
// standard library is found, and nil when a build can be tried.
func CheckToolchain(ctx context.Context) error {
	_, err := FindToolchain(ctx)
	return err
}

// FindSDK returns the directory of the Rust SDK (sdk/rust, holding
// Cargo.toml and src/lib.rs) for the operator in dir: the first found
// walking up from dir, then from the current directory (sluice build runs
// from within the repository).
func FindSDK(dir string) (string, error) {
	sdk, err := wasmbuild.FindSDK(dir, "rust", "Cargo.toml", filepath.Join("src", "lib.rs"))
	if err != nil || sdk != "" {
		return sdk, err
	}
	return "", fmt.Errorf("%s: cannot find the sluice Rust SDK (sdk/rust/Cargo.toml and src/lib.rs) in a parent of it or of the current directory; run sluice build from within the sluice repository", dir)
}

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir()
}

// CrateName is the crate name an operator in dir is compiled under: the
// directory's name with every character other than ASCII letters, digits
// and '_' replaced by '_' (and a leading digit prefixed).
func CrateName(dir string) string {
	base := filepath.Base(dir)
	var b strings.Builder
	for _, r := range base {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	name := b.String()
	if name == "" || (name[0] >= '0' && name[0] <= '9') || name == "sluice" {
		name = "op_" + name
	}
	return name
}

// common are the flags of both compilations: optimized, one codegen unit
// and no paths (only remapped ones) in the output, so that a module
// depends only on the sources and the toolchain.
func common(tc Toolchain, absDir, sdk, tmp string) []string {
	return []string{
		"--edition", "2021", "--target", tc.Target,
		"-C", "opt-level=2", "-C", "codegen-units=1", "-C", "strip=symbols",
		"--remap-path-prefix", sdk + "=sdk/rust",
		"--remap-path-prefix", absDir + "=.",
		"--remap-path-prefix", tmp + "=/tmp",
	}
}

// SDKCommand returns rustc's arguments to compile the SDK in sdk into
// tmp/libsluice.rlib.
func SDKCommand(tc Toolchain, absDir, sdk, tmp string) []string {
	args := common(tc, absDir, sdk, tmp)
	return append(args, "--crate-type", "rlib", "--crate-name", "sluice",
		"-o", filepath.Join(tmp, "libsluice.rlib"), filepath.Join(sdk, "src", "lib.rs"))
}

// OperatorCommand returns rustc's arguments to compile the operator in
// absDir, linked against tmp/libsluice.rlib, to absOut.
func OperatorCommand(tc Toolchain, absDir, sdk, tmp, absOut string) []string {
	args := common(tc, absDir, sdk, tmp)
	return append(args, "--crate-type", "cdylib", "--crate-name", CrateName(absDir),
		"--extern", "sluice="+filepath.Join(tmp, "libsluice.rlib"), "-L", tmp,
		"-o", absOut, filepath.Join(absDir, "src", "lib.rs"))
}

// Build compiles the Rust operator in dir (its src/lib.rs, which uses the
// crate sluice, the repository's sdk/rust) to the file out. The output is
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
	if !fileExists(filepath.Join(absDir, "src", "lib.rs")) {
		return fmt.Errorf("%s: no src/lib.rs; a Rust operator is a library crate (crate-type cdylib) whose src/lib.rs uses sluice::export_operator! (see sdk/rust)", dir)
	}
	tc, err := FindToolchain(ctx)
	if err != nil {
		return err
	}
	sdk, err := FindSDK(absDir)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "sluice-rustwasm-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := rustc(ctx, tc, absDir, SDKCommand(tc, absDir, sdk, tmp)); err != nil {
		return fmt.Errorf("compiling the Rust SDK (%s): %w", sdk, err)
	}
	// rustc writes the module next to temporary files of its own: build
	// in tmp and move it into place.
	tmpOut := filepath.Join(tmp, "op.wasm")
	if err := rustc(ctx, tc, absDir, OperatorCommand(tc, absDir, sdk, tmp, tmpOut)); err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	data, err := os.ReadFile(tmpOut)
	if err != nil {
		return err
	}
	return os.WriteFile(absOut, data, 0o644)
}

func rustc(ctx context.Context, tc Toolchain, dir string, args []string) error {
	cmd := exec.CommandContext(ctx, tc.Rustc, args...)
	cmd.Dir = dir
	var output bytes.Buffer
	cmd.Stdout = &output
	cmd.Stderr = &output
	if err := cmd.Run(); err != nil {
		text := strings.TrimSpace(output.String())
		if strings.Contains(text, "can't find crate for `std`") || strings.Contains(text, "can't find crate for `core`") {
			return &ToolchainError{Missing: "the " + tc.Target + " standard library (libstd-rust-dev-wasm32)", Detail: text}
		}
		return fmt.Errorf("%s (%s): %v\n%s", tc.Rustc, tc.Target, err, text)
	}
	return nil
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

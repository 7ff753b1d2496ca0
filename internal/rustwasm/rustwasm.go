// Package rustwasm compiles Rust operators to WebAssembly with rustc
// (target wasm32-wasi, a WASI reactor: a cdylib with no _start) against the
// Rust SDK in sdk/rust. It backs `sluice build` for Rust and lets tests
// build Rust guest modules from source, as package cwasm does for C.
//
// The toolchain is a rustc with the wasm32-wasi standard library. Cargo is
// not used: the SDK is compiled as an rlib, then the operator's src/lib.rs
// as a cdylib linked against it. The rustc is $SLUICE_RUSTC if set, else
// /usr/bin/rustc (Debian's; a rustup rustc on PATH usually lacks the
// wasm32-wasi target). On Debian 12 and Ubuntu:
//
//	apt-get install rustc libstd-rust-dev-wasm32
package rustwasm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/sluice-io/sluice/internal/wasmbuild"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// InstallHint is the command that installs the toolchain on Debian and
// Ubuntu.
const InstallHint = "apt-get install rustc libstd-rust-dev-wasm32"

// DefaultRustc is the rustc used when $SLUICE_RUSTC is not set.
const DefaultRustc = "/usr/bin/rustc"

// Target is the rustc target operators are built for.
const Target = "wasm32-wasi"

// Rustc returns the rustc to use: $SLUICE_RUSTC or DefaultRustc.
func Rustc() string {
	if r := os.Getenv("SLUICE_RUSTC"); r != "" {
		return r
	}
	return DefaultRustc
}

// ToolchainError says that part of the Rust toolchain is missing and how
// to install it.
type ToolchainError struct {
	Missing string // what is missing, e.g. "rustc (/usr/bin/rustc)"
	Detail  string // optional: the compiler's output
}

func (e *ToolchainError) Error() string {
	msg := fmt.Sprintf("building a Rust operator needs rustc with the %s standard library; missing: %s. Install them with: %s (or point SLUICE_RUSTC at a rustc that has the %s target)", Target, e.Missing, InstallHint, Target)
	if e.Detail != "" {
		msg += "\n" + e.Detail
	}
	return msg
}

// CheckToolchain returns a *ToolchainError when rustc or its wasm32-wasi
// standard library is missing, and nil when a build can be tried.
func CheckToolchain(ctx context.Context) error {
	rustc := Rustc()
	if _, err := exec.LookPath(rustc); err != nil {
		return &ToolchainError{Missing: "rustc (" + rustc + ")"}
	}
	out, err := exec.CommandContext(ctx, rustc, "--print", "sysroot").Output()
	if err != nil {
		return &ToolchainError{Missing: "a working rustc (" + rustc + ")", Detail: err.Error()}
	}
	lib := filepath.Join(strings.TrimSpace(string(out)), "lib", "rustlib", Target)
	if fi, err := os.Stat(lib); err != nil || !fi.IsDir() {
		return &ToolchainError{Missing: "the " + Target + " standard library (" + lib + ", from libstd-rust-dev-wasm32)"}
	}
	return nil
}

// FindSDK returns the directory of the Rust SDK (sdk/rust, holding
// Cargo.toml and src/lib.rs) for the operator in dir: the first found
// walking up from dir, then from the current directory (sluice build runs
// from within the repository).
func FindSDK(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	starts := []string{abs}
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	for _, start := range starts {
		for d := start; ; d = filepath.Dir(d) {
			sdk := filepath.Join(d, "sdk", "rust")
			if fileExists(filepath.Join(sdk, "Cargo.toml")) && fileExists(filepath.Join(sdk, "src", "lib.rs")) {
				return sdk, nil
			}
			if filepath.Dir(d) == d {
				break
			}
		}
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
func common(absDir, sdk, tmp string) []string {
	return []string{
		"--edition", "2021", "--target", Target,
		"-C", "opt-level=2", "-C", "codegen-units=1", "-C", "strip=symbols",
		"--remap-path-prefix", sdk + "=sdk/rust",
		"--remap-path-prefix", absDir + "=.",
		"--remap-path-prefix", tmp + "=/tmp",
	}
}

// SDKCommand returns rustc's arguments to compile the SDK in sdk into
// tmp/libsluice.rlib.
func SDKCommand(absDir, sdk, tmp string) []string {
	args := common(absDir, sdk, tmp)
	return append(args, "--crate-type", "rlib", "--crate-name", "sluice",
		"-o", filepath.Join(tmp, "libsluice.rlib"), filepath.Join(sdk, "src", "lib.rs"))
}

// OperatorCommand returns rustc's arguments to compile the operator in
// absDir, linked against tmp/libsluice.rlib, to absOut.
func OperatorCommand(absDir, sdk, tmp, absOut string) []string {
	args := common(absDir, sdk, tmp)
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
	if err := CheckToolchain(ctx); err != nil {
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
	if err := rustc(ctx, absDir, SDKCommand(absDir, sdk, tmp)); err != nil {
		return fmt.Errorf("compiling the Rust SDK (%s): %w", sdk, err)
	}
	// rustc writes the module next to temporary files of its own: build
	// in tmp and move it into place.
	tmpOut := filepath.Join(tmp, "op.wasm")
	if err := rustc(ctx, absDir, OperatorCommand(absDir, sdk, tmp, tmpOut)); err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	data, err := os.ReadFile(tmpOut)
	if err != nil {
		return err
	}
	return os.WriteFile(absOut, data, 0o644)
}

func rustc(ctx context.Context, dir string, args []string) error {
	cmd := exec.CommandContext(ctx, Rustc(), args...)
	cmd.Dir = dir
	var output bytes.Buffer
	cmd.Stdout = &output
	cmd.Stderr = &output
	if err := cmd.Run(); err != nil {
		text := strings.TrimSpace(output.String())
		if strings.Contains(text, "can't find crate for `std`") || strings.Contains(text, "can't find crate for `core`") {
			return &ToolchainError{Missing: "the " + Target + " standard library (libstd-rust-dev-wasm32)", Detail: text}
		}
		return fmt.Errorf("rustc (%s): %v\n%s", Target, err, text)
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

// Package modcheck checks a WebAssembly module's imports and exports
// against ABI v1. It works on a neutral description of the module, so that
// every runtime (plugins/wazero, plugins/wasmtime) refuses the same modules
// with the same messages.
package modcheck

import (
	"fmt"
	"slices"
	"strings"

	"github.com/sluice-io/sluice/abi"
)

// Kind is what an import or export is.
type Kind int

const (
	Func Kind = iota
	Memory
	Table
	Global
	Tag
)

// Signature is a function type.
type Signature struct {
	Params, Results []abi.ValType
}

// String formats s as "(i32, i32) -> (i32)", the form every message uses.
func (s Signature) String() string {
	return formatTypes(s.Params) + " -> " + formatTypes(s.Results)
}

// Import is one import of a module.
type Import struct {
	Module, Name string
	Kind         Kind
	Sig          Signature // for Func
}

// Export is one export of a module.
type Export struct {
	Name string
	Kind Kind
	Sig  Signature // for Func
}

// Check returns every way in which a module with these imports and exports
// breaks ABI v1, each naming the import or export and, for a signature
// mismatch, what was expected and what was found. wasi holds the WASI
// preview 1 functions the runtime provides, by name.
func Check(imports []Import, exports []Export, wasi map[string]Signature) []string {
	var problems []string
	declaresVersion := false
	for _, im := range imports {
		if im.Kind == Memory {
			problems = append(problems, fmt.Sprintf("imports memory %s.%s; an operator must define and export its own memory", im.Module, im.Name))
			continue
		}
		if im.Kind != Func {
			problems = append(problems, fmt.Sprintf("imports %s %s.%s; operators may import only functions", kindName(im.Kind), im.Module, im.Name))
			continue
		}
		got := im.Sig.String()
		switch im.Module {
		case abi.Module:
			want, ok := abi.HostFuncs[im.Name]
			if !ok {
				problems = append(problems, fmt.Sprintf("imports %s.%s %s, which ABI v1 does not have (it has: %s)",
					im.Module, im.Name, got, strings.Join(sortedKeys(abi.HostFuncs), ", ")))
				continue
			}
			if im.Name == abi.FuncCheckVersion {
				declaresVersion = true
			}
			if w := (Signature{want.Params, want.Results}).String(); w != got {
				problems = append(problems, fmt.Sprintf("imports %s.%s with signature %s, want %s", im.Module, im.Name, got, w))
			}
		case abi.WASIModule:
			want, ok := wasi[im.Name]
			if !ok {
				problems = append(problems, fmt.Sprintf("imports %s.%s %s, which the host's WASI preview 1 does not provide", im.Module, im.Name, got))
				continue
			}
			if w := want.String(); w != got {
				problems = append(problems, fmt.Sprintf("imports %s.%s with signature %s, want %s", im.Module, im.Name, got, w))
			}
		default:
			problems = append(problems, fmt.Sprintf("imports %s.%s %s from module %q; operators may import only from %s and %s",
				im.Module, im.Name, got, im.Module, abi.Module, abi.WASIModule))
		}
	}
	if !declaresVersion {
		problems = append(problems, fmt.Sprintf("does not import %s.%s () -> (), which declares ABI v1 (was it built for another ABI version, or without a sluice SDK?)",
			abi.Module, abi.FuncCheckVersion))
	}

	funcs := map[string]Signature{}
	memories := map[string]bool{}
	for _, ex := range exports {
		switch ex.Kind {
		case Func:
			funcs[ex.Name] = ex.Sig
		case Memory:
			memories[ex.Name] = true
		}
	}
	for _, name := range sortedKeys(abi.Exports) {
		want := abi.Exports[name]
		w := (Signature{want.Params, want.Results}).String()
		sig, ok := funcs[name]
		if !ok {
			problems = append(problems, fmt.Sprintf("missing export %s %s", name, w))
			continue
		}
		if got := sig.String(); got != w {
			problems = append(problems, fmt.Sprintf("export %s has signature %s, want %s", name, got, w))
		}
	}
	if !memories[abi.ExportMemory] {
		problems = append(problems, fmt.Sprintf("missing export %s (the guest's linear memory)", abi.ExportMemory))
	}
	if sig, ok := funcs[abi.ExportInitialize]; ok {
		if got := sig.String(); got != "() -> ()" {
			problems = append(problems, fmt.Sprintf("export %s has signature %s, want () -> ()", abi.ExportInitialize, got))
		}
	}
	if _, ok := funcs[abi.ExportStart]; ok {
		problems = append(problems, fmt.Sprintf("exports %s, so it is a WASI command module; build it as a reactor (Go: -buildmode=c-shared, as `sluice build` does)",
			abi.ExportStart))
	}
	return problems
}

func kindName(k Kind) string {
	switch k {
	case Func:
		return "function"
	case Memory:
		return "memory"
	case Table:
		return "table"
	case Global:
		return "global"
	case Tag:
		return "tag"
	}
	return "item"
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func formatTypes(ts []abi.ValType) string {
	names := make([]string, len(ts))
	for i, t := range ts {
		names[i] = typeName(t)
	}
	return "(" + strings.Join(names, ", ") + ")"
}

// typeName spells value types as the text format does.
func typeName(t abi.ValType) string {
	switch t {
	case 0x7f:
		return "i32"
	case 0x7e:
		return "i64"
	case 0x7d:
		return "f32"
	case 0x7c:
		return "f64"
	case 0x7b:
		return "v128"
	case 0x70:
		return "funcref"
	case 0x6f:
		return "externref"
	}
	return fmt.Sprintf("type %#x", byte(t))
}

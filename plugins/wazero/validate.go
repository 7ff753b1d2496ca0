package wazero

import (
	"fmt"
	"slices"
	"strings"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/sluice-io/sluice/abi"
)

// validate checks a compiled module's imports and exports against ABI v1
// and returns every problem, each naming the import or export and, for a
// signature mismatch, what was expected and what was found.
func (r *Runtime) validate(cm wazero.CompiledModule) []string {
	var problems []string
	declaresVersion := false
	for _, f := range cm.ImportedFunctions() {
		mod, name, _ := f.Import()
		got := signatureOf(f)
		switch mod {
		case abi.Module:
			want, ok := abi.HostFuncs[name]
			if !ok {
				problems = append(problems, fmt.Sprintf("imports %s.%s %s, which ABI v1 does not have (it has: %s)",
					mod, name, got, strings.Join(knownHostFuncs(), ", ")))
				continue
			}
			if name == abi.FuncCheckVersion {
				declaresVersion = true
			}
			if w := formatSignature(want.Params, want.Results); w != got {
				problems = append(problems, fmt.Sprintf("imports %s.%s with signature %s, want %s", mod, name, got, w))
			}
		case abi.WASIModule:
			def, ok := r.wasi[name]
			if !ok {
				problems = append(problems, fmt.Sprintf("imports %s.%s %s, which the host's WASI preview 1 does not provide", mod, name, got))
				continue
			}
			if w := signatureOf(def); w != got {
				problems = append(problems, fmt.Sprintf("imports %s.%s with signature %s, want %s", mod, name, got, w))
			}
		default:
			problems = append(problems, fmt.Sprintf("imports %s.%s %s from module %q; operators may import only from %s and %s",
				mod, name, got, mod, abi.Module, abi.WASIModule))
		}
	}
	for _, m := range cm.ImportedMemories() {
		mod, name, _ := m.Import()
		problems = append(problems, fmt.Sprintf("imports memory %s.%s; an operator must define and export its own memory", mod, name))
	}
	if !declaresVersion {
		problems = append(problems, fmt.Sprintf("does not import %s.%s () -> (), which declares ABI v1 (was it built for another ABI version, or without a sluice SDK?)",
			abi.Module, abi.FuncCheckVersion))
	}

	exports := cm.ExportedFunctions()
	for _, name := range sortedKeys(abi.Exports) {
		want := abi.Exports[name]
		w := formatSignature(want.Params, want.Results)
		f, ok := exports[name]
		if !ok {
			problems = append(problems, fmt.Sprintf("missing export %s %s", name, w))
			continue
		}
		if got := signatureOf(f); got != w {
			problems = append(problems, fmt.Sprintf("export %s has signature %s, want %s", name, got, w))
		}
	}
	if _, ok := cm.ExportedMemories()[abi.ExportMemory]; !ok {
		problems = append(problems, fmt.Sprintf("missing export %s (the guest's linear memory)", abi.ExportMemory))
	}
	if f, ok := exports[abi.ExportInitialize]; ok {
		if got := signatureOf(f); got != "() -> ()" {
			problems = append(problems, fmt.Sprintf("export %s has signature %s, want () -> ()", abi.ExportInitialize, got))
		}
	}
	if _, ok := exports[abi.ExportStart]; ok {
		problems = append(problems, fmt.Sprintf("exports %s, so it is a WASI command module; build it as a reactor (Go: -buildmode=c-shared, as `sluice build` does)",
			abi.ExportStart))
	}
	return problems
}

func knownHostFuncs() []string { return sortedKeys(abi.HostFuncs) }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func signatureOf(f api.FunctionDefinition) string {
	return formatValueTypes(f.ParamTypes()) + " -> " + formatValueTypes(f.ResultTypes())
}

func formatSignature(params, results []abi.ValType) string {
	return formatValueTypes(valueTypes(params)) + " -> " + formatValueTypes(valueTypes(results))
}

func formatValueTypes(ts []api.ValueType) string {
	names := make([]string, len(ts))
	for i, t := range ts {
		names[i] = api.ValueTypeName(t)
	}
	return "(" + strings.Join(names, ", ") + ")"
}

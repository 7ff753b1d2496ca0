package wazero

import (
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/sluice-io/sluice/abi"
	"github.com/sluice-io/sluice/plugins/internal/modcheck"
)

// validate checks a compiled module's imports and exports against ABI v1
// (package modcheck, shared with the other runtimes) and returns every
// problem.
func (r *Runtime) validate(cm wazero.CompiledModule) []string {
	var imports []modcheck.Import
	for _, f := range cm.ImportedFunctions() {
		mod, name, _ := f.Import()
		imports = append(imports, modcheck.Import{Module: mod, Name: name, Kind: modcheck.Func, Sig: signatureOf(f)})
	}
	for _, m := range cm.ImportedMemories() {
		mod, name, _ := m.Import()
		imports = append(imports, modcheck.Import{Module: mod, Name: name, Kind: modcheck.Memory})
	}
	var exports []modcheck.Export
	for name, f := range cm.ExportedFunctions() {
		exports = append(exports, modcheck.Export{Name: name, Kind: modcheck.Func, Sig: signatureOf(f)})
	}
	for name := range cm.ExportedMemories() {
		exports = append(exports, modcheck.Export{Name: name, Kind: modcheck.Memory})
	}
	return modcheck.Check(imports, exports, r.wasi)
}

func signatureOf(f api.FunctionDefinition) modcheck.Signature {
	return modcheck.Signature{Params: abiTypes(f.ParamTypes()), Results: abiTypes(f.ResultTypes())}
}

// abiTypes converts wazero value types to abi's; both use the binary
// format's type codes.
func abiTypes(ts []api.ValueType) []abi.ValType {
	out := make([]abi.ValType, len(ts))
	for i, t := range ts {
		out[i] = abi.ValType(t)
	}
	return out
}

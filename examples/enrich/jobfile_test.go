//go:build !wasip1

package enrich_test

import (
	"strings"
	"testing"

	"github.com/sluice-io/sluice/examples/enrich/gen"
	"github.com/sluice-io/sluice/host"
)

func TestJobFileLoads(t *testing.T) {
	spec, err := host.LoadJobFile("enrich.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if spec.Name != "enrich" || !strings.HasSuffix(spec.Module, "enrich/go/enrich/enrich.wasm") ||
		strings.Join(spec.Inputs, ",") != gen.ClicksTopic || len(spec.Outputs) != 1 || spec.Outputs[0].Topic != gen.OutputTopic ||
		len(spec.Tables) != 1 || spec.Tables[0].Name != "profiles" || spec.Tables[0].Topic != gen.ProfilesTopic || len(spec.Stores) != 0 {
		t.Errorf("enrich.yaml = %+v", spec)
	}
}

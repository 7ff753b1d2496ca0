//go:build !wasip1

package attribution_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/sluice-io/sluice/examples/attribution/gen"
	"github.com/sluice-io/sluice/host"
)

func TestJobFileLoads(t *testing.T) {
	spec, err := host.LoadJobFile("attribution.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var outs []string
	for _, o := range spec.Outputs {
		outs = append(outs, o.Topic)
	}
	var stores []string
	for _, s := range spec.Stores {
		stores = append(stores, s.Name)
	}
	if spec.Name != "attribution" || !strings.HasSuffix(spec.Module, "attribution/go/attribution/attribution.wasm") ||
		strings.Join(spec.Inputs, ",") != gen.ImpressionsTopic+","+gen.ClicksTopic ||
		strings.Join(outs, ",") != strings.Join(gen.Outputs, ",") || strings.Join(stores, ",") != "impression-buffer,click-buffer" ||
		len(spec.Tables) != 0 {
		t.Errorf("attribution.yaml = %+v", spec)
	}
	if got := fmt.Sprint(spec.Parameters); got != "map[lateness:1m window:10m]" {
		t.Errorf("parameters %s", got)
	}
}

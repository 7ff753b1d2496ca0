// Command produce writes the enrich example's generated data to a running
// node: first the profiles, then the clicks, each partitioned by key.
//
//	go run ./examples/enrich/gen/produce --brokers 127.0.0.1:9092 --clicks 5000 --seed 1
//
// It prints how many records it wrote and how many records the enrich job
// will write to each partition of clicks-enriched.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/sluice-io/sluice/examples/enrich/gen"
	"github.com/sluice-io/sluice/examples/internal/genkit"
)

func main() {
	brokers := flag.String("brokers", "127.0.0.1:9092", "comma-separated seed brokers")
	clicks := flag.Int("clicks", 5000, "number of clicks to generate")
	seed := flag.Uint64("seed", 1, "random seed (the same seed makes the same data)")
	flag.Parse()
	if err := run(strings.Split(*brokers, ","), *clicks, *seed); err != nil {
		fmt.Fprintln(os.Stderr, "produce:", err)
		os.Exit(1)
	}
}

func run(brokers []string, clicks int, seed uint64) error {
	d := gen.Generate(seed, clicks)
	if err := genkit.ProduceTo(brokers, genkit.Batch{Name: "profiles", Records: d.Profiles}, genkit.Batch{Name: "clicks", Records: d.Clicks}); err != nil {
		return err
	}
	fmt.Printf("produced %d profile records to %s and %d clicks to %s\n", len(d.Profiles), gen.ProfilesTopic, len(d.Clicks), gen.ClicksTopic)
	for p, outs := range gen.Expected(d, gen.Partitions) {
		fmt.Printf("expect %d records in %s partition %d\n", len(outs), gen.OutputTopic, p)
	}
	return nil
}

// Command produce writes the attribution example's generated data to a
// running node: the impressions, then the clicks, each partitioned by key
// (the ad id), in order of arrival (some records out of order, some late).
//
//	go run ./examples/attribution/gen/produce --brokers 127.0.0.1:9092 --impressions 6000 --seed 1
//
// It prints how many records it wrote and how many records the
// attribution job will write to each output topic, per the reference
// model (with the job file's window of 10m and lateness of 1m).
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/sluice-io/sluice/examples/attribution/gen"
	"github.com/sluice-io/sluice/examples/internal/genkit"
)

func main() {
	brokers := flag.String("brokers", "127.0.0.1:9092", "comma-separated seed brokers")
	impressions := flag.Int("impressions", 6000, "number of impressions to generate")
	seed := flag.Uint64("seed", 1, "random seed (the same seed makes the same data)")
	flag.Parse()
	if err := run(strings.Split(*brokers, ","), *impressions, *seed); err != nil {
		fmt.Fprintln(os.Stderr, "produce:", err)
		os.Exit(1)
	}
}

func run(brokers []string, impressions int, seed uint64) error {
	d := gen.Generate(seed, impressions)
	if err := genkit.ProduceTo(brokers, genkit.Batch{Name: "impressions", Records: d.Impressions}, genkit.Batch{Name: "clicks", Records: d.Clicks}); err != nil {
		return err
	}
	fmt.Printf("produced %d impressions to %s and %d clicks to %s\n", len(d.Impressions), gen.ImpressionsTopic, len(d.Clicks), gen.ClicksTopic)
	want, stats := gen.Expected(d, gen.Partitions, gen.Window.Milliseconds(), gen.Lateness.Milliseconds())
	for o, topic := range gen.Outputs {
		var counts []string
		for p := range want[o] {
			counts = append(counts, fmt.Sprint(len(want[o][p])))
		}
		fmt.Printf("expect %s records in %s (per partition)\n", strings.Join(counts, "+"), topic)
	}
	fmt.Printf("%d records are out of order within the allowed lateness; %d impressions are still in the window at the end\n", stats.OutOfOrder, stats.Pending)
	return nil
}

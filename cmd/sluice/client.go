package main

import (
	"context"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

const defaultBrokers = "127.0.0.1:9092"

// addBrokersFlag declares --brokers on a client command and its children.
func addBrokersFlag(cmd *cobra.Command) {
	cmd.PersistentFlags().String("brokers", defaultBrokers, "comma-separated seed brokers (env SLUICE_BROKERS)")
}

// brokersOf returns the seed brokers, and whether the user named them: the
// flag wins, then SLUICE_BROKERS, then the default.
func brokersOf(cmd *cobra.Command) (brokers []string, explicit bool) {
	f := cmd.Flags().Lookup("brokers")
	raw := f.Value.String()
	explicit = f.Changed
	if !f.Changed {
		if env, ok := os.LookupEnv(envPrefix + "_BROKERS"); ok && env != "" {
			raw, explicit = env, true
		}
	}
	for _, b := range strings.Split(raw, ",") {
		if b = strings.TrimSpace(b); b != "" {
			brokers = append(brokers, b)
		}
	}
	return brokers, explicit
}

// newClient builds a franz-go client for the command's brokers.
func newClient(cmd *cobra.Command, opts ...kgo.Opt) (*kgo.Client, error) {
	brokers, _ := brokersOf(cmd)
	return kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...), kgo.ClientID("sluice-cli")}, opts...)...)
}

// newAdmin builds an admin client; closing the returned kgo.Client closes
// both.
func newAdmin(cmd *cobra.Command) (*kadm.Client, *kgo.Client, error) {
	cl, err := newClient(cmd)
	if err != nil {
		return nil, nil, err
	}
	return kadm.NewClient(cl), cl, nil
}

// withAdmin runs fn with an admin client whose context ends after
// adminTimeout, and closes the client afterwards.
func withAdmin(cmd *cobra.Command, fn func(ctx context.Context, adm *kadm.Client) error) error {
	adm, cl, err := newAdmin(cmd)
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(cmd.Context(), adminTimeout)
	defer cancel()
	return fn(ctx, adm)
}

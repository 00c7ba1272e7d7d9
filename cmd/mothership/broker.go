package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/mothership-dev/mothership/internal/runtime/broker"
)

func newBrokerCmd() *cobra.Command {
	var dataDir, listen, logLevel string
	cmd := &cobra.Command{
		Use:   "broker",
		Short: "Run the embedded Kafka-protocol broker as a process of its own",
		Long: `Run the embedded Kafka-protocol broker (franz-go's kfake, persisted in
--data-dir) as a standalone process, for a local distributed setup. In
production the services point at Apache Kafka or Redpanda instead.`,
		PreRunE: func(cmd *cobra.Command, _ []string) error { return bindEnv(cmd) },
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(logLevel)
			if err != nil {
				return err
			}
			b, err := broker.Start(broker.Config{DataDir: dataDir, Listen: listen, Logger: log})
			if err != nil {
				return err
			}
			defer b.Close()
			log.Info("broker ready", "bootstrap", b.Addrs(), "data_dir", dataDir)
			fmt.Fprintln(cmd.OutOrStdout(), b.Addrs()[0])
			<-cmd.Context().Done()
			log.Info("broker stopping")
			return nil
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "mothership-data/broker", "directory of the broker's persisted log")
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:9092", "address to serve the Kafka protocol on")
	cmd.Flags().StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	return cmd
}

// Command mothership is the one binary of Mothership: the control plane, its
// embedded broker, and (later) the client verbs.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

// gcPercent is the heap growth allowed between collections unless GOGC is
// set: the control plane's live heap is small next to the machines it runs
// on, and at Go's default (100) collecting it cost about 8 % of the
// CPU of a busy fleet; at 200 it costs about half that, for some 100 MiB
// more RSS at 10,000 clusters (BENCHMARKS.md). GOGC or GOMEMLIMIT trade
// the other way.
const gcPercent = 200

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCmd().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "mothership:", err)
		os.Exit(1)
	}
}

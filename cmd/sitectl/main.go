// Command sitectl deploys and operates one system across three sites (Douala,
// Yaoundé and a cloud hub), each running its own Docker Swarm.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := Run(ctx, Streams{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}, os.Args[1:])
	stop()
	if err != nil {
		code := exitCode(err)
		if !isSilent(err) {
			fmt.Fprintln(os.Stderr, "sitectl:", err)
		}
		os.Exit(code)
	}
}

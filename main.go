// Command rmprune turns sparsity-trained ResNets into pruned plain networks
// (RM: exact residual removal, then channel pruning) and measures what each
// pruning ratio costs in accuracy and buys in speed on this machine.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"

	"github.com/rmprune/rmprune/internal/version"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if err != errUsage {
			fmt.Fprintln(os.Stderr, "rmprune:", oneLine(err.Error()))
		}
		os.Exit(exitCode(err))
	}
}

// run is the whole program; main only wires the process to it.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	env := &env{ctx: ctx, getenv: getenv, stdin: stdin, stdout: stdout, stderr: stderr}
	if len(args) == 0 {
		return env.dispatch("serve", nil)
	}
	switch args[0] {
	case "--version", "-version", "version":
		fmt.Fprintln(stdout, "rmprune", version.String())
		return nil
	case "-h", "--help", "help":
		usage(stdout)
		return nil
	}
	if len(args[0]) > 0 && args[0][0] == '-' {
		return env.dispatch("serve", args)
	}
	return env.dispatch(args[0], args[1:])
}

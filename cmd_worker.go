package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/url"

	"github.com/rmprune/rmprune/cluster"
)

func cmdWorker(e *env, args []string) error {
	f := flag.NewFlagSet("worker", flag.ContinueOnError)
	f.SetOutput(e.stderr)
	f.Usage = func() {
		fmt.Fprintf(e.stderr, "usage: rmprune worker --server nats://HOST:PORT [--name N] [--target LABEL] [--threads N] [--token-file F]\n"+
			"Compute sweep points for a coordinator (rmprune serve --cluster), one at a time. Dials out only.\n\nflags:\n")
		f.PrintDefaults()
	}
	server := f.String("server", "", "NATS server of the coordinator, nats://HOST:PORT (comma-separated for a cluster)")
	name := f.String("name", "", "worker name, unique in the cluster (default: host name and pid)")
	target := f.String("target", "", "run only sweeps of this target (default: sweeps without one)")
	threads := f.Int("threads", 0, "threads per point (default: the sweep's, at most this machine's cores)")
	tokenFile := f.String("token-file", "", "file holding the NATS authentication token")
	cacheDir := f.String("cache", "", "directory of downloaded models (default: the user cache directory)")
	datasets := datasetFlags{}
	f.Var(datasets, "dataset", "extra dataset this worker can open, NAME=SPEC ("+sweepSpecs+"); repeatable")
	if err := f.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return errUsage
	}
	if f.NArg() > 0 {
		fmt.Fprintf(e.stderr, "rmprune worker: unexpected argument %q\n", f.Arg(0))
		return errUsage
	}
	if *server == "" {
		fmt.Fprintln(e.stderr, "rmprune worker: --server nats://HOST:PORT is required")
		return errUsage
	}
	if u, err := url.Parse(*server); err != nil || (u.Scheme != "nats" && u.Scheme != "tls") {
		return fmt.Errorf("--server %q: want nats://HOST:PORT", *server)
	}
	if *threads < 0 {
		return fmt.Errorf("--threads must be ≥ 0")
	}
	token := ""
	if *tokenFile != "" {
		var err error
		if token, err = cluster.ReadToken(*tokenFile); err != nil {
			return err
		}
	}
	log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	nc, err := cluster.Connect(*server, "rmprune worker "+*name, token)
	if err != nil {
		return err
	}
	defer nc.Close()
	return cluster.RunWorker(e.ctx, nc, cluster.WorkerOptions{Name: *name, Target: *target, Threads: *threads,
		Datasets: datasets, CacheDir: *cacheDir, Log: log})
}

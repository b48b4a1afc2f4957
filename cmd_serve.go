package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/rmprune/rmprune/demo"
	"github.com/rmprune/rmprune/internal/version"
	"github.com/rmprune/rmprune/store"
	"github.com/rmprune/rmprune/sweep"
	"github.com/rmprune/rmprune/web"
)

// datasetFlags collects repeated --dataset NAME=SPEC.
type datasetFlags map[string]string

var datasetName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,39}$`)

func (d datasetFlags) String() string { return "" }

func (d datasetFlags) Set(v string) error {
	name, spec, ok := strings.Cut(v, "=")
	if !ok || spec == "" {
		return fmt.Errorf("want NAME=SPEC, e.g. cifar10=cifar10:/data/cifar")
	}
	if !datasetName.MatchString(name) {
		return fmt.Errorf("dataset name %q: use lower-case letters, digits, '.', '_' and '-'", name)
	}
	d[name] = spec
	return nil
}

func cmdServe(e *env, args []string) error {
	f := flag.NewFlagSet("serve", flag.ContinueOnError)
	f.SetOutput(e.stderr)
	f.Usage = func() {
		fmt.Fprintf(e.stderr, "usage: rmprune [serve] [--addr 127.0.0.1:8080] [--db PATH] [--no-demo] [--dataset NAME=SPEC ...] [--jobs N] [--allowed-host NAME ...]\n"+
			"       [--cluster [--nats ADDR | --nats-url URL]]\n"+
			"Start the dashboard: models, sweeps, Pareto charts, compare and downloads.\n\nflags:\n")
		f.PrintDefaults()
	}
	addr := f.String("addr", "127.0.0.1:8080", "listen address (loopback by default; the dashboard has no authentication)")
	dbPath := f.String("db", store.DefaultPath(e.getenv), "SQLite database (artifacts are kept in a folder beside it)")
	noDemo := f.Bool("no-demo", false, "do not install the demo model and sweep into a new database")
	jobs := f.Int("jobs", 1, "sweeps run at once (one heavy job at a time keeps timings honest)")
	var allowedHosts hostFlags
	f.Var(&allowedHosts, "allowed-host", "extra Host name the dashboard answers to (e.g. behind a reverse proxy; NAME or NAME:PORT); repeatable")
	datasets := datasetFlags{}
	f.Var(datasets, "dataset", "extra dataset offered to sweeps, NAME=SPEC ("+sweepSpecs+"); repeatable")
	cf := clusterFlags(f)
	if err := f.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return errUsage
	}
	if f.NArg() > 0 {
		fmt.Fprintf(e.stderr, "rmprune serve: unexpected argument %q\n", f.Arg(0))
		return errUsage
	}
	if err := checkBounds(f); err != nil {
		return err
	}
	if err := cf.check(); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, stop := context.WithCancel(e.ctx)
	defer stop()

	db, err := store.Open(ctx, *dbPath)
	if err != nil {
		return err
	}
	defer db.Close()
	// Listen before touching the sweeps: a second server started by mistake
	// on the same port stops here without marking the first one's work.
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	defer ln.Close()
	if host, _, err := net.SplitHostPort(ln.Addr().String()); err == nil {
		if ip := net.ParseIP(host); ip != nil && !ip.IsLoopback() {
			log.Warn("listening beyond loopback: anyone who can reach this address can upload models and start work", "addr", ln.Addr())
		}
	}
	if n, size, err := web.RemoveStaleUploads(db.ArtifactDir()); err != nil {
		return err
	} else if n > 0 {
		log.Info("removed partial uploads left by the last shutdown", "files", n, "bytes", size)
	}
	if n, err := db.MarkInterrupted(ctx); err != nil {
		return err
	} else if n > 0 {
		log.Warn("sweeps interrupted by the last shutdown; resume them from their page", "count", n)
	}
	runner := &sweep.Runner{DB: db, Datasets: datasets, Version: version.String()}
	names := slices.Collect(func(yield func(string) bool) {
		for k := range sweep.BuiltinDatasets {
			if !yield(k) {
				return
			}
		}
		for k := range datasets {
			if _, dup := sweep.BuiltinDatasets[k]; !dup && !yield(k) {
				return
			}
		}
	})
	if !*noDemo {
		// A one-pass fine-tune on 2,000 training images per pruned point (~1 s
		// each) recovers what pruning without it loses, so the demo's curves
		// compare the forms as a user would use them.
		opt := web.DemoOptions{Model: demo.MNIST(), Name: "resnet20-mnist (demo)",
			Dataset: "mnist", Ratios: []float64{0.3, 0.5, 0.7}, Limit: 2000}
		if runner.CanFinetune() {
			opt.FinetuneEpochs, opt.FinetuneLimit = 1, 2000
		}
		id, created, err := web.InstallDemo(ctx, db, opt)
		if err != nil {
			log.Error("demo not installed", "err", err)
		} else if created {
			log.Info("demo installed", "sweep", id)
		}
	}
	var sweeps web.SweepRunner = runner
	deps := web.Deps{DB: db, Runner: runner, Datasets: names, CanFinetune: runner.CanFinetune(),
		Addr: ln.Addr().String(), AllowedHosts: allowedHosts, Log: log}
	if cf.enabled() {
		coord, closeCluster, err := startCluster(ctx, cf, db, runner, log, e)
		if err != nil {
			return err
		}
		defer closeCluster()
		sweeps, deps.Runner, deps.Workers = coord, coord, coord.Workers
	}
	queue := web.NewQueue(db, sweeps, *jobs, log)
	deps.Queue = queue
	handler := web.NewServer(deps)

	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		BaseContext: func(net.Listener) context.Context { return ctx }}
	queue.Start(ctx)
	fmt.Fprintf(e.stderr, "rmprune dashboard on http://%s/  (database %s, %d cores, %d job(s) at a time; Ctrl-C stops)\n",
		ln.Addr(), db.Path(), runtime.NumCPU(), *jobs)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err = <-errc:
	case <-ctx.Done():
	}
	stop() // interrupts running sweeps: they stay resumable
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
	queue.Wait() // before the cluster's deferred close
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// hostFlags collects repeated --allowed-host NAME.
type hostFlags []string

func (h *hostFlags) String() string { return strings.Join(*h, ",") }

func (h *hostFlags) Set(v string) error {
	v = strings.TrimSpace(v)
	if v == "" || strings.ContainsAny(v, "/ \t@") {
		return fmt.Errorf("want a host name, optionally with :PORT")
	}
	*h = append(*h, v)
	return nil
}

const sweepSpecs = "mnist, fashion-mnist, cifar10:DIR, cifar100:DIR, folder:DIR"

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"github.com/rmprune/rmprune/cluster"
	"github.com/rmprune/rmprune/store"
	"github.com/rmprune/rmprune/sweep"
)

// serveClusterFlags are serve's scale-out flags.
type serveClusterFlags struct {
	cluster    *bool
	listen     *string
	url        *string
	public     *bool
	tokenFile  *string
	ackWait    *time.Duration
	maxDeliver *int
	workerTTL  *time.Duration
}

func clusterFlags(f *flag.FlagSet) *serveClusterFlags {
	return &serveClusterFlags{
		cluster:    f.Bool("cluster", false, "run sweep points on workers (rmprune worker) through NATS JetStream"),
		listen:     f.String("nats", "127.0.0.1:4222", "with --cluster: the embedded NATS server's listen address (port 0: any free)"),
		url:        f.String("nats-url", "", "with --cluster: use this existing NATS (JetStream) cluster, nats://HOST:PORT[,...], instead of embedding one"),
		public:     f.Bool("nats-public", false, "allow a non-loopback --nats address (needs --nats-token-file)"),
		tokenFile:  f.String("nats-token-file", "", "file holding the NATS authentication token (workers give the same)"),
		ackWait:    f.Duration("ack-wait", cluster.DefaultPolicy.AckWait, "with --cluster: a worker silent this long loses its point (redelivered)"),
		maxDeliver: f.Int("max-deliver", cluster.DefaultPolicy.MaxDeliver, "with --cluster: deliveries of a point before it fails"),
		workerTTL:  f.Duration("worker-ttl", cluster.DefaultPolicy.WorkerTTL, "with --cluster: a worker not heard of this long leaves the registry"),
	}
}

func (c *serveClusterFlags) enabled() bool { return *c.cluster }

// check refuses flag combinations before anything is opened.
func (c *serveClusterFlags) check() error {
	if !*c.cluster {
		return nil
	}
	if *c.tokenFile != "" {
		if _, err := cluster.ReadToken(*c.tokenFile); err != nil {
			return err
		}
	}
	if *c.url == "" {
		if err := cluster.CheckListen(*c.listen, *c.public, *c.tokenFile != ""); err != nil {
			return err
		}
	}
	if *c.ackWait < 100*time.Millisecond || *c.maxDeliver < 1 || *c.workerTTL < time.Second {
		return errors.New("--ack-wait ≥ 100ms, --max-deliver ≥ 1 and --worker-ttl ≥ 1s, please")
	}
	return nil
}

// startCluster embeds a NATS server (or dials --nats-url), creates the
// coordinator, starts it and queues again the sweeps a previous coordinator
// left interrupted (their workers went on meanwhile).
func startCluster(ctx context.Context, cf *serveClusterFlags, db *store.DB, runner *sweep.Runner, log *slog.Logger, e *env) (*cluster.Coordinator, func(), error) {
	token := ""
	if *cf.tokenFile != "" {
		var err error
		if token, err = cluster.ReadToken(*cf.tokenFile); err != nil {
			return nil, nil, err
		}
	}
	var closers []func()
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	url := *cf.url
	if url == "" {
		srv, err := cluster.StartServer(cluster.ServerOptions{Listen: *cf.listen, Public: *cf.public, Token: token,
			StoreDir: db.Path() + ".jetstream"})
		if err != nil {
			return nil, nil, err
		}
		closers = append(closers, srv.Shutdown)
		url = srv.URL()
		fmt.Fprintf(e.stderr, "rmprune: embedded NATS JetStream on %s (store %s.jetstream); workers: rmprune worker --server %s\n",
			url, db.Path(), url)
	}
	nc, err := cluster.Connect(url, "rmprune coordinator", token)
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	closers = append(closers, nc.Close)
	p := cluster.Policy{AckWait: *cf.ackWait, MaxDeliver: *cf.maxDeliver, WorkerTTL: *cf.workerTTL}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	coord, err := cluster.NewCoordinator(sctx, nc, db, runner, p, log)
	if err == nil {
		err = coord.Start(ctx)
	}
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	if ss, err := db.ResumableSweeps(ctx); err == nil {
		for _, s := range ss {
			if db.ResumeSweep(ctx, s.ID) == nil {
				log.Info("cluster: sweep queued again after the restart", "sweep", s.ID)
			}
		}
	}
	return coord, closeAll, nil
}

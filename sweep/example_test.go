package sweep_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"

	"github.com/rmprune/rmprune/store"
	"github.com/rmprune/rmprune/sweep"
)

// A sweep of a registered model: configure, validate, store, run, read the points.
func ExampleRunner_Run() {
	ctx := context.Background()
	db, err := store.Open(ctx, store.DefaultPath(os.Getenv))
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	models, err := db.Models(ctx) // registered with db.CreateModel
	if err != nil || len(models) == 0 {
		log.Fatal("no model")
	}

	r := &sweep.Runner{DB: db, Datasets: map[string]string{"cifar10": "cifar10:/data/cifar"}}
	cfg := sweep.Config{Dataset: "mnist", Method: sweep.MethodSlim, Ratios: []float64{0.3, 0.5, 0.7}, Limit: 1000}
	cfg.Defaults()
	if err := r.Validate(&cfg); errors.Is(err, sweep.ErrConfig) {
		log.Fatal(err) // a bad request
	}
	s, err := db.CreateSweep(ctx, cfg.Sweep(models[0].ID))
	if err != nil {
		log.Fatal(err)
	}
	err = r.Run(ctx, s.ID, func(frac float64, msg string) { log.Printf("%3.0f%% %s", 100*frac, msg) })
	if err != nil {
		log.Fatal(err) // the sweep is failed (or cancelled) in the store too
	}
	points, err := db.Points(ctx, s.ID)
	if err != nil {
		log.Fatal(err)
	}
	for _, p := range points {
		fmt.Printf("%s@%g: top-1 %.3f, %.3f ms\n", p.Form, p.Ratio, p.Top1, p.LatencyMSP50)
	}
}

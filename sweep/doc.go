// Package sweep computes the accuracy–speed curves of the workbench: for a
// stored sweep (a model, a dataset, a pruning criterion and a list of ratios
// per form) it measures the unpruned ResNet and the unpruned RMNet (ratio 0)
// and then every (form, ratio) point — prune, optionally fine-tune, evaluate
// top-1/top-5 on the test split, time latency at batch 1 (p50, p90, per
// layer) and images/s at the sweep's batch on the SIMD engine — and stores
// each point with its environment (CPU, ISA path, threads, version) and its
// artifacts (our safetensors, the ONNX export, the recipe JSON) in the store.
//
// A Runner is the heavy job: it runs the steps of a sweep one after another,
// so its timings never overlap its own evaluation or training; run one sweep
// at a time on a small machine. Sweeps are resumable: points already stored
// are skipped (and given their artifacts when a crash lost them).
//
// Usage (what `rmprune sweep` and the web job queue do):
//
//	db, err := store.Open(ctx, store.DefaultPath(os.Getenv))
//	// ... register the model file: db.CreateModel(ctx, store.Model{...}) → m,
//	// with m.Path relative to db.ArtifactDir()
//	r := &sweep.Runner{DB: db, Datasets: map[string]string{"cifar10": "cifar10:/data/cifar"}}
//	cfg := sweep.Config{Dataset: "mnist", Method: "slim", Ratios: []float64{0.3, 0.5, 0.7}, Limit: 1000}
//	cfg.Defaults()
//	if err := r.Validate(&cfg); err != nil {
//		return err // errors.Is(err, sweep.ErrConfig): a bad request (422)
//	}
//	s, err := db.CreateSweep(ctx, cfg.Sweep(m.ID))
//	// ...
//	err = r.Run(ctx, s.ID, func(frac float64, msg string) { log.Printf("%3.0f%% %s", 100*frac, msg) })
//	points, err := db.Points(ctx, s.ID) // resnet@0, rmnet@0, then each form × ratio
//	arts, err := db.Artifacts(ctx, points[0].ID) // paths relative to db.ArtifactDir()
//
// Cancelling ctx leaves the sweep "cancelled"; cancelling it with cause
// ErrInterrupted (context.WithCancelCause) leaves it "interrupted"; either way
// a later Run (after store.DB.ResumeSweep) measures only the missing points.
// Errors leave it "failed" with the message.
//
// Slim ranks the RMNet's reserved channels and block outputs by the scales
// of the block input and of the residual sum (DESIGN, "Pruning: semantics").
// Unless the checkpoint carries them, a Runner measures those statistics once
// per sweep on a few training images (Runner.CalibImages) and hands them to
// every RM conversion as checkpoint statistics (act_mean/act_var), so the
// recipes say stats_source "checkpoint". Fine-tuning (finetune_epochs > 0)
// uses the train package unless Runner.Finetune replaces it; the unpruned
// references are never fine-tuned.
package sweep

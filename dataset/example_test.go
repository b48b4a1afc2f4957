package dataset_test

import (
	"fmt"
	"log"

	"github.com/rmprune/rmprune/dataset"
)

// A training loop: shuffled, augmented batches prepared ahead by a
// goroutine into reused buffers, and an evaluation pass over the first
// 2,000 test images at a model's input shape.
func Example() {
	d, err := dataset.Open("mnist")
	if err != nil {
		log.Fatal(err) // e.g. "dataset: ...: does not exist"
	}
	train, err := dataset.NewLoader(d.Train, dataset.LoaderOptions{
		Batch: 128, Shuffle: true, Seed: 1, Augment: d.Augment, DropLast: true, Prefetch: 2,
	})
	if err != nil {
		log.Fatal(err)
	}
	for epoch := range 1 {
		for b := range train.Epoch(epoch) {
			_ = b.X      // 128×1×28×28 float32, normalised with d.Mean/d.Std
			_ = b.Labels // 128 labels
			break        // a real loop runs a training step here
		}
	}
	test, err := dataset.NewLoader(d.Test, dataset.LoaderOptions{
		Batch: 100, Limit: 2000, Shape: [3]int{3, 32, 32},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(d.Name, d.Classes, d.Shape, test.Len(), test.Batches(), test.Shape())
	// Output: mnist 10 [1 28 28] 2000 20 [3 32 32]
}

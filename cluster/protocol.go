package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rmprune/rmprune/sweep"
)

// Names of the JetStream resources.
const (
	JobsStream     = "RMPRUNE_JOBS"    // work queue, subjects rmprune.jobs.<target>.<sweep>
	ResultsStream  = "RMPRUNE_RESULTS" // subjects rmprune.results.<sweep>
	BlobBucket     = "rmprune-blobs"   // object store: models and artifacts by SHA-256
	ProgressBucket = "rmprune-progress"
	ClaimBucket    = "rmprune-claims"
	WorkerBucket   = "rmprune-workers"
	// DefaultTarget names the target of sweeps and workers that give none.
	DefaultTarget = "default"
)

// Policy is the delivery policy of the jobs consumers.
type Policy struct {
	// AckWait: a delivery not acknowledged nor heartbeated (InProgress)
	// within it is redelivered. Workers heartbeat every AckWait/4.
	AckWait time.Duration
	// MaxDeliver bounds the deliveries of a job; then its point fails.
	MaxDeliver int
	// WorkerTTL: a worker not heard of for this long leaves the registry.
	WorkerTTL time.Duration
}

// DefaultPolicy is the policy of a production coordinator.
var DefaultPolicy = Policy{AckWait: 60 * time.Second, MaxDeliver: 5, WorkerTTL: 30 * time.Second}

// Job is the message of one point.
type Job struct {
	SweepID int64  `json:"sweep_id"`
	PointID string `json:"point_id"`
	// Gen is the publication's generation (unix nanoseconds): a job
	// published again (coordinator restarted after the dedup window)
	// starts a new generation, whose deliveries outrank the old ones.
	Gen       int64            `json:"gen"`
	ModelSHA  string           `json:"model_sha256"` // object name in BlobBucket
	ModelExt  string           `json:"model_ext"`    // the model file's extension (.pth, .safetensors, ...)
	ModelArch string           `json:"model_arch"`   // architecture given at upload ("" if the file says)
	Dataset   string           `json:"dataset"`      // a dataset name the worker knows
	Calib     int              `json:"calib_images"` // as sweep.Runner.CalibImages
	Input     sweep.PointInput `json:"input"`
}

// Attempt is a delivery of a job: generation, then delivery count.
type Attempt struct {
	Gen      int64  `json:"gen"`
	Delivery uint64 `json:"delivery"`
}

// Less orders attempts.
func (a Attempt) Less(b Attempt) bool {
	return a.Gen < b.Gen || (a.Gen == b.Gen && a.Delivery < b.Delivery)
}

// Claim is the value of a point's key in ClaimBucket: the current attempt.
type Claim struct {
	Attempt
	Worker string `json:"worker"`
}

// Result is what a worker publishes for an attempt: the computed point
// (artifact bytes in BlobBucket, named by SHA-256) or an error.
type Result struct {
	SweepID int64  `json:"sweep_id"`
	PointID string `json:"point_id"`
	Attempt
	Worker     string             `json:"worker"`
	Error      string             `json:"error,omitempty"`
	Final      bool               `json:"final,omitempty"` // an error after the last allowed delivery
	Point      *sweep.PointResult `json:"point,omitempty"`
	ComputeSec float64            `json:"compute_s"` // time the worker spent on the attempt
	UploadSec  float64            `json:"upload_s"`  // of which: artifacts to the object store
}

// ProgressReport is a point's progress (ProgressBucket, key = point id).
type ProgressReport struct {
	Attempt
	Worker string  `json:"worker"`
	Frac   float64 `json:"frac"` // of the point, 0..1
	Msg    string  `json:"msg"`
}

// WorkerInfo is a worker's entry in WorkerBucket (key = name), as GET
// /api/workers lists it.
type WorkerInfo struct {
	Name     string    `json:"name"`
	Target   string    `json:"target"`
	CPU      string    `json:"cpu"`
	ISA      string    `json:"isa"`
	Threads  int       `json:"threads"`
	Current  string    `json:"current"` // point id being computed, "" when idle
	LastSeen time.Time `json:"last_seen"`
}

// PointID names a point of a sweep as a KV key and message id:
// s<sweep>.<form>.<ratio with '_' for '.'>, e.g. s12.rmnet.0_3.
func PointID(sweepID int64, k sweep.Key) string {
	r := strings.ReplaceAll(strconv.FormatFloat(k.Ratio, 'f', -1, 64), ".", "_")
	return fmt.Sprintf("s%d.%s.%s", sweepID, k.Form, r)
}

// JobSubject is the subject of a job of sweep sweepID for target.
func JobSubject(target string, sweepID int64) string {
	return fmt.Sprintf("rmprune.jobs.%s.%d", target, sweepID)
}

// ResultSubject is the subject of results of sweep sweepID.
func ResultSubject(sweepID int64) string { return fmt.Sprintf("rmprune.results.%d", sweepID) }

// ConsumerName is the durable jobs consumer all workers of target share.
func ConsumerName(target string) string { return "workers-" + target }

// Connect dials a NATS server (reconnecting forever) with an optional token.
func Connect(url, name, token string) (*nats.Conn, error) {
	opts := []nats.Option{nats.Name(name), nats.MaxReconnects(-1), nats.ReconnectWait(time.Second),
		nats.RetryOnFailedConnect(true)}
	if token != "" {
		opts = append(opts, nats.Token(token))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("cluster: connect %s: %w", url, err)
	}
	return nc, nil
}

// resources are the JetStream handles both sides use.
type resources struct {
	js       jetstream.JetStream
	blobs    jetstream.ObjectStore
	progress jetstream.KeyValue
	claims   jetstream.KeyValue
	workers  jetstream.KeyValue
}

// setup creates (coordinator) or binds to (worker) the streams, buckets.
func setup(ctx context.Context, js jetstream.JetStream, p Policy, create bool) (*resources, error) {
	r := &resources{js: js}
	var err error
	if create {
		if _, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: JobsStream,
			Subjects: []string{"rmprune.jobs.>"}, Retention: jetstream.WorkQueuePolicy,
			Storage: jetstream.FileStorage, Duplicates: time.Hour}); err != nil {
			return nil, fmt.Errorf("cluster: jobs stream: %w", err)
		}
		if _, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: ResultsStream,
			Subjects: []string{"rmprune.results.>"}, Storage: jetstream.FileStorage, Duplicates: time.Hour,
			MaxAge: 7 * 24 * time.Hour}); err != nil {
			return nil, fmt.Errorf("cluster: results stream: %w", err)
		}
		if r.blobs, err = js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: BlobBucket,
			Storage: jetstream.FileStorage}); err != nil {
			return nil, fmt.Errorf("cluster: object store: %w", err)
		}
		kv := func(name string, ttl time.Duration) (jetstream.KeyValue, error) {
			b, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: name, TTL: ttl,
				Storage: jetstream.FileStorage})
			if err != nil {
				return nil, fmt.Errorf("cluster: kv %s: %w", name, err)
			}
			return b, nil
		}
		if r.progress, err = kv(ProgressBucket, 24*time.Hour); err != nil {
			return nil, err
		}
		if r.claims, err = kv(ClaimBucket, 7*24*time.Hour); err != nil {
			return nil, err
		}
		if r.workers, err = kv(WorkerBucket, p.WorkerTTL); err != nil {
			return nil, err
		}
		return r, nil
	}
	if r.blobs, err = js.ObjectStore(ctx, BlobBucket); err != nil {
		return nil, fmt.Errorf("cluster: object store: %w", err)
	}
	if r.progress, err = js.KeyValue(ctx, ProgressBucket); err != nil {
		return nil, fmt.Errorf("cluster: kv %s: %w", ProgressBucket, err)
	}
	if r.claims, err = js.KeyValue(ctx, ClaimBucket); err != nil {
		return nil, fmt.Errorf("cluster: kv %s: %w", ClaimBucket, err)
	}
	if r.workers, err = js.KeyValue(ctx, WorkerBucket); err != nil {
		return nil, fmt.Errorf("cluster: kv %s: %w", WorkerBucket, err)
	}
	return r, nil
}

// currentClaim reads a point's claim (zero when none).
func (r *resources) currentClaim(ctx context.Context, pointID string) (Claim, uint64, error) {
	e, err := r.claims.Get(ctx, pointID)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Claim{}, 0, nil
	}
	if err != nil {
		return Claim{}, 0, err
	}
	var c Claim
	if err := jsonUnmarshal(e.Value(), &c); err != nil {
		return Claim{}, 0, err
	}
	return c, e.Revision(), nil
}

func jsonUnmarshal(b []byte, v any) error {
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("cluster: decode %T: %w", v, err)
	}
	return nil
}

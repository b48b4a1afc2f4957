package store

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// crashEnv names the database a crash-helper child process writes to.
const crashEnv = "RMPRUNE_STORE_CRASH_DB"

// TestCrashHelper is the child of TestKilledWriterLeavesDatabaseIntact: it
// marks sweep 1 running and adds points until it is killed. Skipped otherwise.
func TestCrashHelper(t *testing.T) {
	path := os.Getenv(crashEnv)
	if path == "" {
		t.Skip("helper process for TestKilledWriterLeavesDatabaseIntact")
	}
	ctx := context.Background()
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.NextJob(ctx); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		if _, _, err := db.AddPoint(ctx, testPoint(1, "rmnet", float64(i)/100000)); err != nil {
			t.Fatal(err)
		}
		if err := db.SetSweepProgress(ctx, 1, float64(i%1000)/1000); err != nil {
			t.Fatal(err)
		}
	}
}

// TestKilledWriterLeavesDatabaseIntact kills (SIGKILL) a process in the middle
// of a sweep's writes, then reopens the database as a restarted server would.
func TestKilledWriterLeavesDatabaseIntact(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "rmprune.db")
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	s := mustSweep(t, db, mustModel(t, db, 1).ID)
	if s.ID != 1 {
		t.Fatalf("got sweep id %d; want 1", s.ID)
	}

	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnv+"="+path)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		ps, err := db.Points(ctx, s.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(ps) >= 50 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("child wrote %d points in 20 s; want 50", len(ps))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	db.Close()

	db, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var check string
	if err := db.db.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity_check: got %q, %v; want ok", check, err)
	}
	n, err := db.MarkInterrupted(ctx)
	if err != nil || n != 1 {
		t.Fatalf("MarkInterrupted: got %d, %v; want 1", n, err)
	}
	rs, err := db.ResumableSweeps(ctx)
	if err != nil || len(rs) != 1 || rs[0].ID != s.ID {
		t.Fatalf("ResumableSweeps: got %+v, %v; want sweep %d", rs, err, s.ID)
	}
	ps, err := db.Points(ctx, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range ps {
		if want := NormRatio(float64(i) / 100000); p.Ratio != want || p.Top1 != 0.991 || len(p.Channels) != 1 {
			t.Fatalf("point %d: got ratio %v top1 %v channels %v; want a whole point at ratio %v", i, p.Ratio, p.Top1, p.Channels, want)
		}
	}
	if err := db.ResumeSweep(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	if _, created, err := db.AddPoint(ctx, testPoint(s.ID, "rmnet", 0)); err != nil || created {
		t.Errorf("re-adding a done point after resume: got created %v, %v; want false, nil", created, err)
	}
	t.Logf("child killed after %d points; all intact", len(ps))
}

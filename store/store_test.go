package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"
)

// openTest opens a fresh database file in t.TempDir with a fixed, ticking clock.
func openTest(t *testing.T) *DB {
	t.Helper()
	db, err := Open(context.Background(), filepath.Join(t.TempDir(), "data", "rmprune.db"))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	base := time.Date(2026, 11, 27, 12, 0, 0, 123456000, time.UTC)
	var tick atomic.Int64 // seconds; writers in several goroutines share the clock
	db.now = func() time.Time { return base.Add(time.Duration(tick.Add(1)) * time.Second) }
	return db
}

func TestOpenTwiceIsIdempotent(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "a", "b", "rmprune.db")
	for i := range 3 {
		db, err := Open(ctx, path)
		if err != nil {
			t.Fatalf("open #%d: %v", i+1, err)
		}
		v, err := db.SchemaVersion(ctx)
		if err != nil {
			t.Fatal(err)
		}
		steps, err := loadMigrations(migrationFS)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := v, len(steps); got != want {
			t.Errorf("open #%d: got user_version %d; want %d", i+1, got, want)
		}
		if i == 0 {
			if err := db.SetMeta(ctx, "k", "v"); err != nil {
				t.Fatal(err)
			}
		} else if got, err := db.Meta(ctx, "k"); err != nil || got != "v" {
			t.Errorf("open #%d: got meta %q, %v; want \"v\" kept across opens", i+1, got, err)
		}
		if fi, err := os.Stat(db.ArtifactDir()); err != nil || !fi.IsDir() {
			t.Errorf("open #%d: artifact dir %s: %v", i+1, db.ArtifactDir(), err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestPragmasOnEveryConnection(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	// Hold several connections at once so the pool must open new ones.
	const n = 4
	for i := range n {
		c, err := db.db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var fk, busy int
		var mode string
		if err := c.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&fk); err != nil {
			t.Fatal(err)
		}
		if err := c.QueryRowContext(ctx, "PRAGMA busy_timeout").Scan(&busy); err != nil {
			t.Fatal(err)
		}
		if err := c.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
			t.Fatal(err)
		}
		if fk != 1 || busy != 5000 || mode != "wal" {
			t.Errorf("conn %d: got foreign_keys=%d busy_timeout=%d journal_mode=%s; want 1 5000 wal", i, fk, busy, mode)
		}
	}
}

func TestOpenRefusesNonDatabase(t *testing.T) {
	tests := []struct {
		name    string
		content []byte
	}{
		{"text", []byte(strings.Repeat("this is not an SQLite database, just text.\n", 200))},
		{"short", []byte("hello")},
		{"binary", func() []byte {
			b := make([]byte, 8192)
			for i := range b {
				b[i] = byte(i*7 + 3)
			}
			return b
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "model.db")
			if err := os.WriteFile(path, tt.content, 0o600); err != nil {
				t.Fatal(err)
			}
			db, err := Open(context.Background(), path)
			if err == nil {
				db.Close()
				t.Fatalf("got nil error; want one for a non-SQLite file")
			}
			if !errors.Is(err, ErrNotDatabase) {
				t.Errorf("got %v; want errors.Is ErrNotDatabase", err)
			}
			if prefix := "store: open " + path + ": "; !strings.HasPrefix(err.Error(), prefix) {
				t.Errorf("got %q; want prefix %q", err, prefix)
			}
			got, _ := os.ReadFile(path)
			if string(got) != string(tt.content) {
				t.Errorf("file changed by a refused Open")
			}
		})
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "rmprune.db")
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.db.ExecContext(ctx, "PRAGMA user_version = 99"); err != nil {
		t.Fatal(err)
	}
	db.Close()

	db, err = Open(ctx, path)
	if err == nil {
		db.Close()
		t.Fatal("got nil error; want refusal of a newer schema")
	}
	if !errors.Is(err, ErrSchemaTooNew) {
		t.Errorf("got %v; want errors.Is ErrSchemaTooNew", err)
	}
	all, _ := fs.Glob(migrationFS, "migrations/*.sql")
	for _, want := range []string{"store: open " + path + ": ", "version 99", fmt.Sprintf("knows up to %d", len(all))} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("got %q; want it to contain %q", err, want)
		}
	}
}

func TestOpenRefusesForeignDatabase(t *testing.T) {
	tests := []struct {
		name  string
		setup string
		want  string
	}{
		{"tables without version", "CREATE TABLE notes (body TEXT)", "1 schema objects and no schema version"},
		{"other application id", "PRAGMA application_id = 42", "application_id 0x2a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			path := filepath.Join(t.TempDir(), "other.db")
			raw, err := sql.Open("sqlite", path)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := raw.ExecContext(ctx, tt.setup); err != nil {
				t.Fatal(err)
			}
			raw.Close()
			db, err := Open(ctx, path)
			if err == nil {
				db.Close()
				t.Fatal("got nil error; want refusal of another program's database")
			}
			if !errors.Is(err, ErrForeignDatabase) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v; want ErrForeignDatabase mentioning %q", err, tt.want)
			}
		})
	}
}

func TestApplicationIDSet(t *testing.T) {
	db := openTest(t)
	var app int
	if err := db.db.QueryRow("PRAGMA application_id").Scan(&app); err != nil {
		t.Fatal(err)
	}
	if app != applicationID {
		t.Errorf("got application_id %#x; want %#x", app, applicationID)
	}
}

func TestOpenBadPath(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, path, want string
	}{
		{"empty", "", "empty database path"},
		{"query", filepath.Join(dir, "x.db?mode=ro"), "must not contain"},
		{"directory", dir, "is a directory"},
		{"parent is a file", filepath.Join(dir, "file", "x.db"), "store: open"},
	}
	if err := os.WriteFile(filepath.Join(dir, "file"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, err := Open(context.Background(), tt.path)
			if err == nil {
				db.Close()
				t.Fatalf("got nil error; want %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %q; want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestMigrationIsAtomic(t *testing.T) {
	ctx := context.Background()
	init, err := migrationFS.ReadFile("migrations/0001_init.sql")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "rmprune.db")
	bad := fstest.MapFS{
		"migrations/0001_init.sql":  {Data: init},
		"migrations/0002_extra.sql": {Data: []byte("CREATE TABLE extra (a INTEGER) STRICT;\nINSERT INTO missing VALUES (1);")},
	}
	if db, err := open(ctx, path, bad); err == nil {
		db.Close()
		t.Fatal("got nil error; want the failing migration's")
	} else if !strings.Contains(err.Error(), "migration 0002_extra.sql") {
		t.Errorf("got %q; want it to name the migration", err)
	}

	// 0001 was applied and kept; 0002 left nothing behind.
	db, err := open(ctx, path, fstest.MapFS{"migrations/0001_init.sql": {Data: init}})
	if err != nil {
		t.Fatal(err)
	}
	v, _ := db.SchemaVersion(ctx)
	var n int
	db.db.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema WHERE name = 'extra'").Scan(&n)
	db.Close()
	if v != 1 || n != 0 {
		t.Errorf("after failed 0002: got user_version %d, table extra %d; want 1, 0", v, n)
	}

	good := fstest.MapFS{
		"migrations/0001_init.sql":  {Data: init},
		"migrations/0002_extra.sql": {Data: []byte("CREATE TABLE extra (a INTEGER) STRICT;")},
	}
	db, err = open(ctx, path, good)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if v, _ := db.SchemaVersion(ctx); v != 2 {
		t.Errorf("got user_version %d; want 2", v)
	}
}

func TestLoadMigrationsRefusesBadSets(t *testing.T) {
	sql := &fstest.MapFile{Data: []byte("SELECT 1;")}
	tests := []struct {
		name string
		fsys fstest.MapFS
		want string
	}{
		{"gap", fstest.MapFS{"migrations/0001_a.sql": sql, "migrations/0003_c.sql": sql}, "without gaps"},
		{"duplicate", fstest.MapFS{"migrations/0001_a.sql": sql, "migrations/0001_b.sql": sql}, "without gaps"},
		{"no number", fstest.MapFS{"migrations/init.sql": sql}, "NNNN_name.sql"},
		{"zero", fstest.MapFS{"migrations/0000_a.sql": sql}, "NNNN_name.sql"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadMigrations(tt.fsys)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v; want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestDefaultPath(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"xdg", map[string]string{"XDG_DATA_HOME": "/data", "HOME": "/home/u"}, "/data/rmprune/rmprune.db"},
		{"relative xdg ignored", map[string]string{"XDG_DATA_HOME": "data", "HOME": "/home/u"}, "/home/u/.local/share/rmprune/rmprune.db"},
		{"home", map[string]string{"HOME": "/home/u"}, "/home/u/.local/share/rmprune/rmprune.db"},
		{"nothing", nil, "rmprune.db"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := DefaultPath(func(k string) string { return tt.env[k] })
			if got != filepath.FromSlash(tt.want) {
				t.Errorf("got %q; want %q", got, tt.want)
			}
		})
	}
}

func TestArtifactDirBesideDatabase(t *testing.T) {
	db := openTest(t)
	if got, want := db.ArtifactDir(), filepath.Join(filepath.Dir(db.Path()), "artifacts"); got != want {
		t.Errorf("got %q; want %q", got, want)
	}
}

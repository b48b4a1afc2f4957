// Package store is the SQLite persistence layer of the rmprune workbench: models,
// conversions, sweeps, points, artifacts, jobs and settings, kept in one database
// file (modernc.org/sqlite, pure Go) with embedded, versioned migrations.
//
// Every pooled connection runs in WAL mode with foreign keys on and a 5 s busy
// timeout, and write transactions begin IMMEDIATE, so several goroutines (or a
// server and a `rmprune sweep` process) can write concurrently without
// SQLITE_BUSY. A *DB is safe for concurrent use; there is no package-level state.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"modernc.org/sqlite" // registers the "sqlite" database/sql driver
	sqlite3 "modernc.org/sqlite/lib"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// dsnParams are applied by the driver to every new pooled connection.
// synchronous(NORMAL) is safe in WAL mode against process crashes (kill -9);
// only a power loss can drop the last transactions. _txlock=immediate makes
// write transactions take the write lock at BEGIN, so the busy timeout applies
// instead of a deferred transaction failing with SQLITE_BUSY on upgrade.
const dsnParams = "?_pragma=busy_timeout(5000)" +
	"&_pragma=journal_mode(WAL)" +
	"&_pragma=foreign_keys(ON)" +
	"&_pragma=synchronous(NORMAL)" +
	"&_txlock=immediate"

// timeFormat is how times are stored: UTC, fixed width, so text order is time order.
const timeFormat = "2006-01-02T15:04:05.000000Z"

// DB is an open rmprune database.
type DB struct {
	db   *sql.DB
	path string
	now  func() time.Time // the clock; tests replace it
}

// Open opens the database at path, creating it and its parent directory (and
// the artifact directory beside it) when missing, and applies the embedded
// migrations that the file has not seen yet. A file that is not an SQLite
// database, or one written by a newer rmprune (a schema version higher than
// this binary knows), is refused with an error naming the path.
func Open(ctx context.Context, path string) (*DB, error) {
	return open(ctx, path, migrationFS)
}

func open(ctx context.Context, path string, migrations fs.FS) (*DB, error) {
	if path == "" {
		return nil, errors.New("store: open: empty database path")
	}
	if strings.ContainsAny(path, "?#") || strings.HasPrefix(path, "file:") {
		return nil, fmt.Errorf("store: open %s: database path must not contain '?' or '#' or start with \"file:\"", path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return nil, fmt.Errorf("store: open %s: is a directory", path)
	}
	steps, err := loadMigrations(migrations)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	sqlDB, err := sql.Open("sqlite", path+dsnParams)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	db := &DB{db: sqlDB, path: path, now: time.Now}
	if err := db.init(ctx, steps); err != nil {
		sqlDB.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	if err := os.MkdirAll(db.ArtifactDir(), 0o750); err != nil {
		sqlDB.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	return db, nil
}

// init checks that the file is an SQLite database of a known version and migrates it.
func (db *DB) init(ctx context.Context, steps []migration) error {
	// The first connection runs the DSN pragmas, which read the file header.
	if err := db.db.PingContext(ctx); err != nil {
		return openError(err)
	}
	// Read the schema too, so that a damaged or non-SQLite file fails here,
	// before any migration, with ErrNotDatabase.
	var n int
	if err := db.db.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema").Scan(&n); err != nil {
		return openError(err)
	}
	return db.migrate(ctx, steps)
}

// openError gives the driver's open-time failures a clearer shape.
func openError(err error) error {
	var se *sqlite.Error
	if errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_NOTADB {
		return fmt.Errorf("%w: %w", ErrNotDatabase, err)
	}
	return err
}

// Close closes the database. It waits for running queries to finish.
func (db *DB) Close() error {
	if err := db.db.Close(); err != nil {
		return fmt.Errorf("store: close %s: %w", db.path, err)
	}
	return nil
}

// Path returns the database file path as given to Open.
func (db *DB) Path() string { return db.path }

// ArtifactDir returns the directory beside the database that holds model files
// and generated artifacts ("artifacts" next to the database file). Open creates
// it. Paths stored in the database are best kept relative to it, so the pair
// can be moved together.
func (db *DB) ArtifactDir() string {
	return filepath.Join(filepath.Dir(db.path), "artifacts")
}

// DefaultPath returns the default database path:
// $XDG_DATA_HOME/rmprune/rmprune.db when XDG_DATA_HOME is set to an absolute
// path (the XDG spec says to ignore relative ones), else
// $HOME/.local/share/rmprune/rmprune.db, else rmprune.db in the current
// directory when HOME is unset too.
func DefaultPath(getenv func(string) string) string {
	if d := getenv("XDG_DATA_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "rmprune", "rmprune.db")
	}
	if h := getenv("HOME"); h != "" {
		return filepath.Join(h, ".local", "share", "rmprune", "rmprune.db")
	}
	return "rmprune.db"
}

// SchemaVersion returns the schema version of the open database (PRAGMA user_version).
func (db *DB) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	if err := db.db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return 0, fmt.Errorf("store: schema version: %w", err)
	}
	return v, nil
}

// migration is one numbered SQL file.
type migration struct {
	version int
	name    string
	sql     string
}

// loadMigrations reads migrations/NNNN_name.sql from fsys; versions must run 1, 2, 3, … without gaps.
func loadMigrations(fsys fs.FS) ([]migration, error) {
	names, err := fs.Glob(fsys, "migrations/*.sql")
	if err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	var steps []migration
	for _, name := range names {
		base := filepath.Base(name)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v < 1 {
			return nil, fmt.Errorf("migration %s: name must be NNNN_name.sql", base)
		}
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("migration %s: %w", base, err)
		}
		steps = append(steps, migration{version: v, name: base, sql: string(b)})
	}
	sort.Slice(steps, func(i, j int) bool { return steps[i].version < steps[j].version })
	for i, m := range steps {
		if m.version != i+1 {
			return nil, fmt.Errorf("migration %s: version %d, want %d (versions run 1, 2, 3, … without gaps)", m.name, m.version, i+1)
		}
	}
	return steps, nil
}

// migrate applies each migration newer than the database's user_version in its
// own IMMEDIATE transaction, together with the new user_version, so a failed
// migration leaves the database as it was and two processes opening the same
// new file do not both apply it.
func (db *DB) migrate(ctx context.Context, steps []migration) error {
	known := len(steps)
	for _, m := range steps {
		err := db.tx(ctx, func(tx *sql.Tx) error {
			var cur int
			if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&cur); err != nil {
				return fmt.Errorf("read schema version: %w", openError(err))
			}
			if cur > known {
				return fmt.Errorf("%w: database schema version %d, this rmprune knows up to %d; use a newer rmprune", ErrSchemaTooNew, cur, known)
			}
			if cur >= m.version {
				return nil
			}
			if cur == 0 {
				if err := checkFresh(ctx, tx); err != nil {
					return err
				}
			}
			if _, err := tx.ExecContext(ctx, m.sql); err != nil {
				return fmt.Errorf("migration %s: %w", m.name, err)
			}
			// PRAGMA takes no bound parameters; the numbers are ours.
			if _, err := tx.ExecContext(ctx, "PRAGMA user_version = "+strconv.Itoa(m.version)); err != nil {
				return fmt.Errorf("migration %s: set schema version: %w", m.name, err)
			}
			if _, err := tx.ExecContext(ctx, "PRAGMA application_id = "+strconv.Itoa(applicationID)); err != nil {
				return fmt.Errorf("migration %s: set application id: %w", m.name, err)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	if known == 0 {
		return errors.New("no migrations")
	}
	// Also refuse a newer database when every known migration was already applied.
	v, err := db.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	if v > known {
		return fmt.Errorf("%w: database schema version %d, this rmprune knows up to %d; use a newer rmprune", ErrSchemaTooNew, v, known)
	}
	return nil
}

// applicationID marks the file as an rmprune database (PRAGMA application_id): "rmpr".
const applicationID = 0x726d7072

// checkFresh refuses to migrate an SQLite file that belongs to another
// program: one with another application_id, or with tables but no schema version.
func checkFresh(ctx context.Context, tx *sql.Tx) error {
	var app, objects int
	if err := tx.QueryRowContext(ctx, "PRAGMA application_id").Scan(&app); err != nil {
		return fmt.Errorf("read application id: %w", err)
	}
	if app != 0 && app != applicationID {
		return fmt.Errorf("%w: application_id %#x", ErrForeignDatabase, app)
	}
	if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema").Scan(&objects); err != nil {
		return fmt.Errorf("read schema: %w", err)
	}
	if app == 0 && objects > 0 {
		return fmt.Errorf("%w: it has %d schema objects and no schema version", ErrForeignDatabase, objects)
	}
	return nil
}

// tx runs fn in a write transaction (BEGIN IMMEDIATE), committing when fn
// returns nil and rolling back otherwise.
func (db *DB) tx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := db.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// stamp formats t for storage.
func stamp(t time.Time) string { return t.UTC().Format(timeFormat) }

// nowText is the current time as stored.
func (db *DB) nowText() string { return stamp(db.now()) }

// parseTime reads a stored time; NULL or "" is the zero time.
func parseTime(s sql.NullString) (time.Time, error) {
	if !s.Valid || s.String == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s.String)
	if err != nil {
		return time.Time{}, fmt.Errorf("bad stored time %q: %w", s.String, err)
	}
	return t, nil
}

// scanner is *sql.Row or *sql.Rows.
type scanner interface {
	Scan(dest ...any) error
}

// placeholders returns "?, ?, …" with n marks.
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

package store

import (
	"context"
	"fmt"
)

// Meta keys used by rmprune.
const (
	// MetaDemoInstalled is set once the demo model and sweep were created,
	// so later starts do not create them again.
	MetaDemoInstalled = "demo_installed"
)

// Meta returns the value stored under key, or ErrNotFound.
func (db *DB) Meta(ctx context.Context, key string) (string, error) {
	var v string
	if err := db.db.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = ?`, key).Scan(&v); err != nil {
		return "", wrap(fmt.Sprintf("meta %q", key), err)
	}
	return v, nil
}

// SetMeta stores value under key, replacing any old value.
func (db *DB) SetMeta(ctx context.Context, key, value string) error {
	_, err := db.db.ExecContext(ctx, `INSERT INTO meta (key, value, updated_at) VALUES (?, ?, ?)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
		key, value, db.nowText())
	return wrap(fmt.Sprintf("set meta %q", key), err)
}

// SetMetaIfAbsent stores value under key only when key has no value yet, and
// reports whether it did: the one caller that gets true does the one-time
// work (e.g. installing the demo), even with two processes starting at once.
func (db *DB) SetMetaIfAbsent(ctx context.Context, key, value string) (bool, error) {
	res, err := db.db.ExecContext(ctx, `INSERT INTO meta (key, value, updated_at) VALUES (?, ?, ?)
		ON CONFLICT (key) DO NOTHING`, key, value, db.nowText())
	if err != nil {
		return false, wrap(fmt.Sprintf("set meta %q", key), err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, wrap(fmt.Sprintf("set meta %q", key), err)
	}
	return n == 1, nil
}

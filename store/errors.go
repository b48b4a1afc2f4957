package store

import (
	"database/sql"
	"errors"
	"fmt"
	"math"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Sentinel errors; test with errors.Is. The web layer maps them to HTTP status
// codes in one place: ErrNotFound → 404, ErrConflict → 409, ErrInvalid and a
// *ConstraintError other than Unique → 422.
var (
	// ErrNotFound: the row asked for (or a row it refers to) does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict: a unique key is taken, or the row is in a state that
	// forbids the change (e.g. resuming a sweep that is done).
	ErrConflict = errors.New("conflict")
	// ErrInvalid: a value was refused before it reached SQLite (e.g. a
	// progress outside 0..1, an unknown status, a NaN measurement).
	ErrInvalid = errors.New("invalid value")
	// ErrNotDatabase: the file given to Open exists but is not an SQLite database.
	ErrNotDatabase = errors.New("not an SQLite database")
	// ErrForeignDatabase: the file given to Open is an SQLite database of
	// another program; it is left untouched.
	ErrForeignDatabase = errors.New("not an rmprune database")
	// ErrSchemaTooNew: the database was written by a newer rmprune whose
	// schema this binary does not know; it is left untouched.
	ErrSchemaTooNew = errors.New("database schema is newer than this rmprune")
)

// ConstraintKind says which SQLite constraint a write broke.
type ConstraintKind int

// The constraint kinds.
const (
	ConstraintOther      ConstraintKind = iota // another SQLITE_CONSTRAINT_* code
	ConstraintUnique                           // UNIQUE or PRIMARY KEY
	ConstraintForeignKey                       // a referenced row is missing
	ConstraintCheck                            // a CHECK (range, enum, json_valid)
	ConstraintNotNull                          // a NOT NULL column got NULL
)

func (k ConstraintKind) String() string {
	switch k {
	case ConstraintUnique:
		return "unique"
	case ConstraintForeignKey:
		return "foreign key"
	case ConstraintCheck:
		return "check"
	case ConstraintNotNull:
		return "not null"
	}
	return "other"
}

// ConstraintError is a write refused by an SQLite constraint. errors.Is(err,
// ErrConflict) holds for ConstraintUnique.
type ConstraintError struct {
	Kind ConstraintKind
	Err  error // the driver's error
}

func (e *ConstraintError) Error() string {
	return fmt.Sprintf("%s constraint: %v", e.Kind, e.Err)
}

// Unwrap returns the driver's error.
func (e *ConstraintError) Unwrap() error { return e.Err }

// Is reports a unique-constraint failure as ErrConflict.
func (e *ConstraintError) Is(target error) bool {
	return target == ErrConflict && e.Kind == ConstraintUnique
}

// mapErr turns sql.ErrNoRows into ErrNotFound and SQLite constraint failures
// into *ConstraintError; other errors pass unchanged.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	var se *sqlite.Error
	if !errors.As(err, &se) || se.Code()&0xff != sqlite3.SQLITE_CONSTRAINT {
		return err
	}
	kind := ConstraintOther
	switch se.Code() {
	case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3.SQLITE_CONSTRAINT_ROWID:
		kind = ConstraintUnique
	case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
		kind = ConstraintForeignKey
	case sqlite3.SQLITE_CONSTRAINT_CHECK:
		kind = ConstraintCheck
	case sqlite3.SQLITE_CONSTRAINT_NOTNULL:
		kind = ConstraintNotNull
	}
	return &ConstraintError{Kind: kind, Err: err}
}

// wrap prefixes err with "store: op: " after mapping it; nil stays nil.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("store: %s: %w", op, mapErr(err))
}

// checkFinite refuses NaN and ±Inf, which SQLite would store as NULL (NaN) or
// as a value no CHECK catches (Inf).
func checkFinite(name string, v float64) error {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return fmt.Errorf("%w: %s = %v", ErrInvalid, name, v)
	}
	return nil
}

// checkFraction refuses values outside 0..1.
func checkFraction(name string, v float64) error {
	if err := checkFinite(name, v); err != nil {
		return err
	}
	if v < 0 || v > 1 {
		return fmt.Errorf("%w: %s = %v, want 0..1", ErrInvalid, name, v)
	}
	return nil
}

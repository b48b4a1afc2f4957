-- 0001_init.sql: the first schema of the rmprune store.
--
-- Conventions: every table is STRICT; ids are INTEGER PRIMARY KEY AUTOINCREMENT
-- (never reused, so "newest first" is "highest id first"); times are TEXT in UTC,
-- RFC 3339 with microseconds ("2026-11-27T11:38:40.123456Z"), written by Go;
-- JSON columns are TEXT checked with json_valid; counts are INTEGER, measurements
-- REAL. File paths are stored as the caller gives them (the web layer stores them
-- relative to the artifact directory) and never come from a request.

-- models: one row per distinct uploaded network. source_sha256 (the SHA-256 of
-- the model's own parameters and running statistics, see DESIGN "Model file of
-- our own") is unique: storing the same network twice returns the first row.
CREATE TABLE models (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT    NOT NULL CHECK (name <> ''),
    arch          TEXT    NOT NULL,
    params        INTEGER NOT NULL CHECK (params >= 0),
    macs          INTEGER NOT NULL CHECK (macs >= 0),
    flops         INTEGER NOT NULL CHECK (flops >= 0),
    source_sha256 TEXT    NOT NULL UNIQUE
                          CHECK (length(source_sha256) = 64 AND source_sha256 NOT GLOB '*[^0-9a-f]*'),
    path          TEXT    NOT NULL CHECK (path <> ''),
    size_bytes    INTEGER NOT NULL CHECK (size_bytes >= 0),
    input_shape   TEXT    NOT NULL,           -- "CxHxW"
    classes       INTEGER NOT NULL CHECK (classes >= 0),
    layers        TEXT    NOT NULL DEFAULT '[]' CHECK (json_valid(layers)), -- architecture table
    created_at    TEXT    NOT NULL
) STRICT;

-- conversions: RM conversion reports (equivalence error and cost) of a model.
CREATE TABLE conversions (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    model_id        INTEGER NOT NULL REFERENCES models (id) ON DELETE CASCADE,
    form            TEXT    NOT NULL CHECK (form <> ''),
    max_abs_err     REAL    NOT NULL CHECK (max_abs_err >= 0),
    max_rel_err     REAL    NOT NULL CHECK (max_rel_err >= 0),
    params_source   INTEGER NOT NULL CHECK (params_source >= 0),
    params_before   INTEGER NOT NULL CHECK (params_before >= 0),
    params_after    INTEGER NOT NULL CHECK (params_after >= 0),
    macs_before     INTEGER NOT NULL CHECK (macs_before >= 0),
    macs_after      INTEGER NOT NULL CHECK (macs_after >= 0),
    flops_before    INTEGER NOT NULL CHECK (flops_before >= 0),
    flops_after     INTEGER NOT NULL CHECK (flops_after >= 0),
    channels_before INTEGER NOT NULL CHECK (channels_before >= 0),
    channels_after  INTEGER NOT NULL CHECK (channels_after >= 0),
    stats_source    TEXT    NOT NULL DEFAULT '',
    layers          TEXT    NOT NULL DEFAULT '[]' CHECK (json_valid(layers)),
    created_at      TEXT    NOT NULL
) STRICT;
CREATE INDEX conversions_model ON conversions (model_id);

-- sweeps: one pruning sweep of a model over a list of ratios and forms.
CREATE TABLE sweeps (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    model_id        INTEGER NOT NULL REFERENCES models (id) ON DELETE CASCADE,
    dataset         TEXT    NOT NULL CHECK (dataset <> ''),
    method          TEXT    NOT NULL CHECK (method <> ''),
    scope           TEXT    NOT NULL CHECK (scope <> ''),
    forms           TEXT    NOT NULL CHECK (json_valid(forms) AND json_type(forms) = 'array'),
    ratios          TEXT    NOT NULL CHECK (json_valid(ratios) AND json_type(ratios) = 'array'),
    min_channels    INTEGER NOT NULL CHECK (min_channels >= 0),
    round_to        INTEGER NOT NULL CHECK (round_to >= 1),
    finetune_epochs INTEGER NOT NULL CHECK (finetune_epochs >= 0),
    batch           INTEGER NOT NULL CHECK (batch >= 1),
    threads         INTEGER NOT NULL CHECK (threads >= 1),
    eval_limit      INTEGER NOT NULL CHECK (eval_limit >= 0), -- 0: the whole test split
    status          TEXT    NOT NULL DEFAULT 'queued'
                            CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled', 'interrupted')),
    progress        REAL    NOT NULL DEFAULT 0 CHECK (progress >= 0 AND progress <= 1),
    error           TEXT    NOT NULL DEFAULT '',
    created_at      TEXT    NOT NULL,
    started_at      TEXT,
    finished_at     TEXT
) STRICT;
CREATE INDEX sweeps_model ON sweeps (model_id);
CREATE INDEX sweeps_status ON sweeps (status);

-- points: one measured (form, ratio) of a sweep. The unique key lets a resumed
-- sweep skip the points it already has.
CREATE TABLE points (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    sweep_id       INTEGER NOT NULL REFERENCES sweeps (id) ON DELETE CASCADE,
    form           TEXT    NOT NULL CHECK (form <> ''),
    ratio          REAL    NOT NULL CHECK (ratio >= 0 AND ratio <= 1),
    channels       TEXT    NOT NULL DEFAULT '[]' CHECK (json_valid(channels)), -- per layer, before/after
    params         INTEGER NOT NULL CHECK (params >= 0),
    macs           INTEGER NOT NULL CHECK (macs >= 0),
    flops          INTEGER NOT NULL CHECK (flops >= 0),
    size_bytes     INTEGER NOT NULL DEFAULT 0 CHECK (size_bytes >= 0),
    top1           REAL    NOT NULL CHECK (top1 >= 0 AND top1 <= 1),
    top5           REAL    NOT NULL CHECK (top5 >= 0 AND top5 <= 1),
    latency_ms_p50 REAL    NOT NULL CHECK (latency_ms_p50 >= 0), -- batch 1
    latency_ms_p90 REAL    NOT NULL CHECK (latency_ms_p90 >= 0), -- batch 1
    images_per_s   REAL    NOT NULL CHECK (images_per_s >= 0),   -- at the sweep batch
    layer_ms       TEXT    NOT NULL DEFAULT '[]' CHECK (json_valid(layer_ms)), -- per-layer latency, batch 1
    cpu            TEXT    NOT NULL DEFAULT '',
    isa            TEXT    NOT NULL DEFAULT '',
    threads        INTEGER NOT NULL DEFAULT 0 CHECK (threads >= 0),
    version        TEXT    NOT NULL DEFAULT '',
    created_at     TEXT    NOT NULL,
    UNIQUE (sweep_id, form, ratio)
) STRICT;

-- artifacts: files derived from a point (pruned model, recipe) or a model.
-- Exactly one owner; at most one artifact of each kind per point.
CREATE TABLE artifacts (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    model_id   INTEGER REFERENCES models (id) ON DELETE CASCADE,
    point_id   INTEGER REFERENCES points (id) ON DELETE CASCADE,
    kind       TEXT    NOT NULL CHECK (kind IN ('onnx', 'safetensors', 'recipe')),
    path       TEXT    NOT NULL CHECK (path <> ''),
    size_bytes INTEGER NOT NULL CHECK (size_bytes >= 0),
    sha256     TEXT    NOT NULL CHECK (length(sha256) = 64 AND sha256 NOT GLOB '*[^0-9a-f]*'),
    created_at TEXT    NOT NULL,
    CHECK ((model_id IS NULL) <> (point_id IS NULL)),
    UNIQUE (point_id, kind)
) STRICT;
CREATE INDEX artifacts_model ON artifacts (model_id);

-- jobs: background work. ref_id names the row the job works on (a sweep id for
-- kind 'sweep'); it is not a foreign key because kinds differ, so the trigger
-- below removes a sweep's jobs with the sweep (also on cascade from models).
CREATE TABLE jobs (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT    NOT NULL CHECK (kind <> ''),
    ref_id     INTEGER NOT NULL,
    status     TEXT    NOT NULL DEFAULT 'queued'
                       CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled', 'interrupted')),
    progress   REAL    NOT NULL DEFAULT 0 CHECK (progress >= 0 AND progress <= 1),
    error      TEXT    NOT NULL DEFAULT '',
    created_at TEXT    NOT NULL,
    updated_at TEXT    NOT NULL
) STRICT;
CREATE INDEX jobs_status ON jobs (status, id);
CREATE INDEX jobs_ref ON jobs (kind, ref_id);

CREATE TRIGGER sweeps_delete_jobs AFTER DELETE ON sweeps
BEGIN
    DELETE FROM jobs WHERE kind = 'sweep' AND ref_id = OLD.id;
END;

-- meta: small key/value settings, e.g. "demo_installed".
CREATE TABLE meta (
    key        TEXT NOT NULL PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at TEXT NOT NULL
) STRICT, WITHOUT ROWID;

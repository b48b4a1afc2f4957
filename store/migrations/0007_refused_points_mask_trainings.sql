-- Issue 11, two changes in one step.
--
-- A sweep point the pruning guards refused (pruning.ErrNoStats: a slim ratio
-- without statistics; ErrDestroyed: a ratio ≤ 0.5 that would keep < 5% of the
-- channels) is stored with status 'refused' and its one-line reason in error,
-- so that the rest of the sweep goes on. Its measurements are 0 and it has no
-- artifacts; charts and the latency pass leave it out.
ALTER TABLE points ADD COLUMN status TEXT NOT NULL DEFAULT 'done' CHECK (status IN ('done', 'refused'));
ALTER TABLE points ADD COLUMN error TEXT NOT NULL DEFAULT '';

-- mask_trainings: mask-sparsity training of a model as a dashboard job. The
-- settings (config, JSON) are fixed at creation, so a resumed run matches its
-- checkpoint; live holds the last progress report (epoch, step, loss, accuracy,
-- masks exactly 0 per kind); result_model_id is the model the run stored. Its
-- job (kind 'masktrain', ref_id = id) carries status, progress and error.
CREATE TABLE mask_trainings (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    model_id        INTEGER NOT NULL REFERENCES models (id) ON DELETE CASCADE,
    config          TEXT    NOT NULL CHECK (json_valid(config) AND json_type(config) = 'object'),
    live            TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(live)),
    result_model_id INTEGER REFERENCES models (id) ON DELETE SET NULL,
    created_at      TEXT    NOT NULL
) STRICT;
CREATE INDEX mask_trainings_model ON mask_trainings (model_id);

CREATE TRIGGER mask_trainings_delete_jobs AFTER DELETE ON mask_trainings
BEGIN
    DELETE FROM jobs WHERE kind = 'masktrain' AND ref_id = OLD.id;
END;

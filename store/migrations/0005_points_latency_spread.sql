-- Latency from the interleaved pass (sweep.MeasureLatency): every point of a
-- sweep timed in rounds that cycle through the models, so all see the same
-- conditions. latency_ms_p50 becomes the median of the round medians and
-- latency_ms_p25/p75 their quartiles (the spread); latency_rounds counts the
-- rounds (0: the point was timed alone, before this pass existed or ran);
-- latency_load is the share of the point's timed wall time during which
-- some other task waited for a CPU (host or in-process pressure);
-- latency_unreliable says why the figure should not be trusted ('' when it
-- can be).
ALTER TABLE points ADD COLUMN latency_ms_p25 REAL NOT NULL DEFAULT 0 CHECK (latency_ms_p25 >= 0);
ALTER TABLE points ADD COLUMN latency_ms_p75 REAL NOT NULL DEFAULT 0 CHECK (latency_ms_p75 >= 0);
ALTER TABLE points ADD COLUMN latency_rounds INTEGER NOT NULL DEFAULT 0 CHECK (latency_rounds >= 0);
ALTER TABLE points ADD COLUMN latency_load REAL NOT NULL DEFAULT 0 CHECK (latency_load >= 0);
ALTER TABLE points ADD COLUMN latency_unreliable TEXT NOT NULL DEFAULT '';

-- A remeasure job (kind 'remeasure', ref_id a sweep id) goes with its sweep.
CREATE TRIGGER sweeps_delete_remeasure_jobs AFTER DELETE ON sweeps
BEGIN
    DELETE FROM jobs WHERE kind = 'remeasure' AND ref_id = OLD.id;
END;

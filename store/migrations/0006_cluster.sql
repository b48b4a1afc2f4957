-- Scale-out (issue 13): the worker that measured a point ('' in process), and
-- the worker target a sweep's points run on ('' for the default target).
ALTER TABLE points ADD COLUMN worker TEXT NOT NULL DEFAULT '';
ALTER TABLE sweeps ADD COLUMN target TEXT NOT NULL DEFAULT '';

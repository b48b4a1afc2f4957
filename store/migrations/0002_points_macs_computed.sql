-- macs_computed: the multiply-accumulates per image the engine computes for a
-- point — macs less what RM's Dirac rows and centre-only columns save by
-- running as copies. 0 for points measured before this column existed.
ALTER TABLE points ADD COLUMN macs_computed INTEGER NOT NULL DEFAULT 0 CHECK (macs_computed >= 0);

-- train_copies: form rmnet fine-tunes RM's copy filters (reserved channels'
-- Dirac rows, merged identity columns) like any other weight. Sweeps made
-- before this column did; new ones keep the copies frozen unless asked.
ALTER TABLE sweeps ADD COLUMN train_copies INTEGER NOT NULL DEFAULT 0 CHECK (train_copies IN (0, 1));
UPDATE sweeps SET train_copies = 1;

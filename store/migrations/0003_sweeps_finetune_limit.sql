-- finetune_limit: fine-tune each pruned point on the first finetune_limit
-- training images per epoch (0: the whole training split).
ALTER TABLE sweeps ADD COLUMN finetune_limit INTEGER NOT NULL DEFAULT 0 CHECK (finetune_limit >= 0);

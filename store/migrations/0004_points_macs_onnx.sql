-- macs_onnx: the multiply-accumulates per image ONNX Runtime computes with the
-- point's downloadable ONNX file; onnx_export: that file's form, copy-aware
-- (RM's copy channels written as Adds/Gathers, not dense convs) or dense.
-- 0 and '' for points stored before these columns existed.
ALTER TABLE points ADD COLUMN macs_onnx INTEGER NOT NULL DEFAULT 0 CHECK (macs_onnx >= 0);
ALTER TABLE points ADD COLUMN onnx_export TEXT NOT NULL DEFAULT '';

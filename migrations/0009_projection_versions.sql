-- The version of the rows a read model's checkpoint stands for. A projection whose code has
-- a higher version builds its next table (`<table>__v<N>`, with a checkpoint of its own,
-- `<name>@v<N>`) beside the live one; `microshop projections promote NAME` swaps it in and
-- sets this to N. A runner writes only while the checkpoint's version is the one it writes.
ALTER TABLE checkpoints ADD COLUMN version integer NOT NULL DEFAULT 1;

-- Rebuilds in progress (or interrupted): one row per projection, written in the same
-- transaction as each chunk the rebuild adds to its shadow table, so a killed rebuild can
-- continue where it stopped (`microshop projections rebuild NAME --resume`) and
-- `microshop projections status` can tell what a killed one left.
CREATE TABLE projection_rebuilds (
    projection     text        PRIMARY KEY,
    shadow         text        NOT NULL,
    -- the bulk phase reads the log up to this position, stream by stream ...
    fence_tx       xid8        NOT NULL,
    fence_position bigint      NOT NULL,
    phase          text        NOT NULL CHECK (phase IN ('streams', 'log')),
    after_stream   text,       -- 'streams': every stream up to this one is in the shadow
    -- ... then in log order from here ('log': applied up to here)
    after_tx       xid8        NOT NULL DEFAULT '0',
    after_position bigint      NOT NULL DEFAULT 0,
    events         bigint      NOT NULL DEFAULT 0,
    total          bigint,     -- events of the projection up to the fence (for progress)
    started_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

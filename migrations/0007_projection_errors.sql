-- Events a projection could not decode or apply: parked here, the runner goes on with the
-- next ones; `microshop projections retry NAME` applies them again once the cause is fixed.
CREATE TABLE projection_errors (
    projection     text        NOT NULL,
    event_id       uuid        NOT NULL,
    global_position bigint     NOT NULL,
    tx_id          xid8        NOT NULL,
    stream_id      text        NOT NULL,
    event_type     text        NOT NULL,
    schema_version integer     NOT NULL,
    error          text        NOT NULL,
    attempts       integer     NOT NULL DEFAULT 1,
    at             timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, event_id)
);
CREATE INDEX projection_errors_by_position ON projection_errors (projection, tx_id, global_position);

-- When a runner of the projection last said it is alive (it beats while idle too).
ALTER TABLE checkpoints ADD COLUMN heartbeat_at timestamptz;

-- The event store: one append-only table for every stream of every service.
CREATE TABLE events (
    global_position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tx_id           xid8        NOT NULL DEFAULT pg_current_xact_id(),
    stream_id       text        NOT NULL,
    stream_version  integer     NOT NULL CHECK (stream_version > 0),
    event_id        uuid        NOT NULL UNIQUE,
    event_type      text        NOT NULL,
    schema_version  integer     NOT NULL DEFAULT 1 CHECK (schema_version > 0),
    data            jsonb       NOT NULL,
    metadata        jsonb       NOT NULL DEFAULT '{}',
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (stream_id, stream_version)
);

-- Global-log readers page through (tx_id, global_position): commit-safe order.
CREATE INDEX events_log_order ON events (tx_id, global_position);

-- Checkpoints of global-log readers (the relay, every projection).
CREATE TABLE checkpoints (
    name       text        PRIMARY KEY,
    tx_id      xid8        NOT NULL DEFAULT '0',
    position   bigint      NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Inbox of consumers: event ids already handled, written in the handler's transaction.
CREATE TABLE inbox (
    consumer   text        NOT NULL,
    event_id   uuid        NOT NULL,
    handled_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);

-- Read model: one row per stream (the catalogue behind `events show` and the admin pages).
CREATE TABLE streams (
    stream_id       text        PRIMARY KEY,
    category        text        NOT NULL,
    version         integer     NOT NULL,
    last_event_type text        NOT NULL,
    event_count     integer     NOT NULL,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);
CREATE INDEX streams_category ON streams (category, updated_at DESC);

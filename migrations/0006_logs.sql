-- log-service: every service's JSON log lines, shipped over RabbitMQ and stored in batches.
-- The common fields are columns (indexed for GET /api/logs filters); the whole line is `line`.
CREATE TABLE logs (
    id             bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ts             timestamptz NOT NULL,
    service        text        NOT NULL,
    level          text        NOT NULL,
    message        text        NOT NULL,
    correlation_id text,
    request_id     text,
    line           jsonb       NOT NULL
);
CREATE INDEX logs_by_time ON logs (ts DESC, id DESC);
CREATE INDEX logs_by_service ON logs (service, ts DESC, id DESC);
CREATE INDEX logs_by_level ON logs (level, ts DESC, id DESC);
CREATE INDEX logs_by_correlation ON logs (correlation_id, ts DESC, id DESC)
    WHERE correlation_id IS NOT NULL;

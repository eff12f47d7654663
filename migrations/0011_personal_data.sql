-- Personal data in events is sealed (AES-256-GCM) with a data key per person; the keys live
-- here, wrapped by a key-encryption key from the environment (PII_KEY_ENCRYPTION_KEY).
-- Forgetting a person destroys their key: the row stays, without it, as the tombstone that
-- refuses new personal data of theirs.
CREATE TABLE personal_keys (
    subject      text        PRIMARY KEY,
    wrapped_key  bytea,
    kek_id       text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    forgotten_at timestamptz,
    CHECK ((wrapped_key IS NULL) = (kek_id IS NULL)),
    CHECK ((wrapped_key IS NULL) = (forgotten_at IS NOT NULL))
);
CREATE INDEX personal_keys_by_kek ON personal_keys (kek_id) WHERE kek_id IS NOT NULL;

-- Accounts that were forgotten: every service reads the recent ones every second, so that
-- tokens issued before stop reaching anything at once, not when they expire.
CREATE TABLE forgotten_users (
    user_id      text        PRIMARY KEY,
    forgotten_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX forgotten_users_by_time ON forgotten_users (forgotten_at);

-- The log is append-only: no UPDATE, DELETE or TRUNCATE, whoever asks. The owner of the
-- table can lift this for one transaction (eventstore.maintenance.editing_events); a
-- separate application role (microshop migrate --app-role) gets only SELECT and INSERT.
CREATE FUNCTION events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'restrict_violation',
              HINT = 'stored events are never changed; append a new event instead';
END
$$;

CREATE TRIGGER events_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_append_only();

REVOKE UPDATE, DELETE, TRUNCATE ON events FROM PUBLIC;

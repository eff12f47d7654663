-- auth-service: rotating refresh tokens, and failed logins counted per account and client.

-- One family per login: every refresh token that login's rotations hand out. Presenting a
-- token that was already rotated (or losing a race to rotate it) revokes the whole family.
-- A family ends at `expires_at` (the login's absolute lifetime) or when revoked; the sweeper
-- deletes ended families (a revoked one once no access token of it can still be alive).
CREATE TABLE refresh_families (
    id              uuid        PRIMARY KEY,
    user_id         uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    revoked_at      timestamptz,
    revoked_because text        CHECK (revoked_because IN ('logout', 'reuse'))
);
CREATE INDEX refresh_families_user ON refresh_families (user_id);
CREATE INDEX refresh_families_expiry ON refresh_families (expires_at);
CREATE INDEX refresh_families_revoked ON refresh_families (revoked_at)
    WHERE revoked_at IS NOT NULL;

-- Only the SHA-256 of a refresh token is kept: the table cannot log anyone in. `used_at` is
-- set when the token is rotated; presenting it again is reuse.
CREATE TABLE refresh_tokens (
    token_hash bytea       PRIMARY KEY,
    family_id  uuid        NOT NULL REFERENCES refresh_families (id) ON DELETE CASCADE,
    issued_at  timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_expiry ON refresh_tokens (expires_at);

-- Failed (and in-flight) logins, one row per attempt: the account as the SHA-256 of its
-- normalized email (no address is kept), whether such an account exists, the client as its
-- IP address. Counted over a sliding window per account+client, per account and (existing
-- accounts only) per client; rows older than the window are swept. The old per-key table
-- held nothing worth keeping beyond minutes.
DROP TABLE login_failures;
CREATE TABLE login_failures (
    account   bytea       NOT NULL,
    known     boolean     NOT NULL,
    client    text        NOT NULL,
    failed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX login_failures_pair ON login_failures (account, client, failed_at);
CREATE INDEX login_failures_client ON login_failures (client, failed_at);
CREATE INDEX login_failures_age ON login_failures (failed_at);

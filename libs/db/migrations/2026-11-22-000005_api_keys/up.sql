-- API keys: only a SHA-256 of the whole key and its public prefix are stored.
CREATE TABLE api_keys (
    id            UUID PRIMARY KEY,
    user_id       UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    display_name  TEXT NOT NULL CHECK (length(display_name) BETWEEN 1 AND 100),
    prefix        TEXT NOT NULL UNIQUE,
    key_hash      TEXT NOT NULL,
    scopes        TEXT[] NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_used_at  TIMESTAMPTZ,
    revoked_at    TIMESTAMPTZ
);

CREATE INDEX api_keys_user ON api_keys (user_id, created_at DESC);

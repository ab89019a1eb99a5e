-- Accounts and sessions. Only hashes of secrets are stored: Argon2id PHC strings
-- for passwords, SHA-256 of refresh tokens (which are random and long, so a fast
-- hash loses nothing).

CREATE TABLE users (
    id                      UUID PRIMARY KEY,
    -- Trimmed and lower-cased; unique among accounts not deleted.
    email                   TEXT NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
    password_hash           TEXT NOT NULL,
    role                    TEXT NOT NULL DEFAULT 'user' CHECK (role IN ('viewer', 'user', 'admin')),
    created_at              TIMESTAMPTZ NOT NULL DEFAULT now(),
    accepted_terms_version  TEXT,
    terms_accepted_at       TIMESTAMPTZ,
    deleted_at              TIMESTAMPTZ
);

CREATE UNIQUE INDEX users_email ON users (email) WHERE deleted_at IS NULL;

CREATE TABLE refresh_tokens (
    id          UUID PRIMARY KEY,
    -- Every token exchanged from one sign-in shares a family; reuse revokes it all.
    family_id   UUID NOT NULL,
    user_id     UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash  TEXT NOT NULL UNIQUE,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at  TIMESTAMPTZ NOT NULL,
    used_at     TIMESTAMPTZ,
    revoked_at  TIMESTAMPTZ
);

CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);

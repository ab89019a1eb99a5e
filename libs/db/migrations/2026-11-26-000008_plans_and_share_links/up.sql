-- Plans: free-tier caps (song length, songs per day) apply to 'free' accounts.
ALTER TABLE users
    ADD COLUMN plan TEXT NOT NULL DEFAULT 'free' CHECK (plan IN ('free', 'standard'));

-- Songs started per owner and day are counted from runs.
CREATE INDEX runs_owner_recent ON runs (owner, created_at DESC);

-- Public gift pages. The token is the page's address and is meant to be passed
-- on, so it is stored as it is (like an unlisted video's link); revoking a link
-- is the way to take it back.
CREATE TABLE share_links (
    id          UUID PRIMARY KEY,
    token       TEXT NOT NULL UNIQUE CHECK (length(token) BETWEEN 16 AND 64),
    owner       TEXT NOT NULL,
    project_id  UUID NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    run_id      UUID NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    message     TEXT NOT NULL DEFAULT '' CHECK (length(message) <= 2000),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at  TIMESTAMPTZ,
    revoked_at  TIMESTAMPTZ
);

CREATE INDEX share_links_project ON share_links (project_id, created_at DESC);

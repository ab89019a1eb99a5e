-- Grants: what a gift link may read of one owner's objects, without naming them.
-- The id is the share link's; URLs carry only the random token and a file's
-- position in `keys`. A live grant (not revoked, not expired) keeps its objects
-- from expiring: a gift page outlives the previews it plays.
CREATE TABLE storage_grants (
    id UUID PRIMARY KEY,
    token TEXT NOT NULL UNIQUE,
    owner TEXT NOT NULL,
    keys TEXT[] NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ,
    revoked_at TIMESTAMPTZ
);

-- The lifecycle sweep asks, per expired object, whether a live grant names it.
CREATE INDEX storage_grants_keys ON storage_grants USING GIN (keys);

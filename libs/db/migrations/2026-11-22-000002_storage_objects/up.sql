-- The storage service's catalog of the bytes it keeps. Only `storage` reads or
-- writes these tables; they answer "what do we store for this user" without
-- listing a bucket, and drive the lifecycle sweep.

CREATE TABLE storage_objects (
    key           TEXT PRIMARY KEY,
    owner         TEXT NOT NULL,
    project_id    UUID NOT NULL,
    run_id        UUID NOT NULL,
    size_bytes    BIGINT NOT NULL CHECK (size_bytes > 0),
    sha256        TEXT NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    content_type  TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Previews expire: unreadable from then on, and purged by the sweep.
    expires_at    TIMESTAMPTZ,
    -- Soft deletion: unreadable from then on, purged once the grace period passed.
    deleted_at    TIMESTAMPTZ
);

CREATE INDEX storage_objects_owner ON storage_objects (owner, key);
CREATE INDEX storage_objects_project ON storage_objects (owner, project_id);
CREATE INDEX storage_objects_deleted ON storage_objects (deleted_at) WHERE deleted_at IS NOT NULL;
CREATE INDEX storage_objects_expiring ON storage_objects (expires_at) WHERE expires_at IS NOT NULL;

-- A deleted project stays deleted: a late upload for it (a worker finishing after
-- the user deleted the project) is refused rather than resurrecting bytes.
CREATE TABLE storage_deleted_projects (
    owner       TEXT NOT NULL,
    project_id  UUID NOT NULL,
    deleted_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (owner, project_id)
);

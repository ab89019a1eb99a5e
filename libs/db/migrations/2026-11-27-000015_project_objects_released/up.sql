-- When storage confirmed it deleted a deleted project's objects. A deletion whose
-- call to storage failed leaves it empty, and project's reconciler calls again
-- until storage answers, so a user's deleted bytes never stay for want of a retry.
ALTER TABLE projects ADD COLUMN objects_released_at TIMESTAMPTZ;

-- Projects deleted before this column existed are released once more (storage's
-- deletion is idempotent); the index keeps the reconciler's question cheap.
CREATE INDEX projects_objects_unreleased ON projects (deleted_at)
    WHERE deleted_at IS NOT NULL AND objects_released_at IS NULL;

-- The purge of deleted projects and accounts (`project`'s purge sweep) finds
-- what is past the retention window by these; a purged account is marked, so
-- the sweep does not look at it again.
CREATE INDEX projects_deleted ON projects (deleted_at) WHERE deleted_at IS NOT NULL;
ALTER TABLE users ADD COLUMN purged_at TIMESTAMPTZ;
CREATE INDEX users_unpurged ON users (deleted_at)
    WHERE deleted_at IS NOT NULL AND purged_at IS NULL;
CREATE INDEX dead_letters_run ON dead_letters (run_id) WHERE run_id IS NOT NULL;
CREATE INDEX idempotency_keys_resource ON idempotency_keys (resource_id);

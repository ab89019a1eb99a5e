-- Job log lines say which provider, provider job, error and worker they are about.
ALTER TABLE job_logs
    ADD COLUMN provider TEXT NOT NULL DEFAULT '',
    ADD COLUMN provider_job_id TEXT NOT NULL DEFAULT '',
    ADD COLUMN error_code TEXT NOT NULL DEFAULT '',
    ADD COLUMN worker_id TEXT NOT NULL DEFAULT '';

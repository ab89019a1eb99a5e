ALTER TABLE job_logs
    DROP COLUMN provider,
    DROP COLUMN provider_job_id,
    DROP COLUMN error_code,
    DROP COLUMN worker_id;

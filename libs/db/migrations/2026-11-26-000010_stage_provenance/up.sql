-- Where each stage's kept outputs came from: the provider, its version or model,
-- its own job id, and the SHA-256 of every input and output (JSON arrays of
-- {"file_name", "sha256"}). The seed and parameters are the run's, frozen when
-- the run was created.
CREATE TABLE stage_provenance (
    stage_id          UUID PRIMARY KEY REFERENCES stages (id) ON DELETE CASCADE,
    run_id            UUID NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    kind              TEXT NOT NULL,
    attempt           INTEGER NOT NULL,
    provider          TEXT NOT NULL,
    provider_version  TEXT NOT NULL,
    provider_job_id   TEXT NOT NULL DEFAULT '',
    inputs            JSONB NOT NULL,
    outputs           JSONB NOT NULL,
    completed_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX stage_provenance_run ON stage_provenance (run_id, completed_at);

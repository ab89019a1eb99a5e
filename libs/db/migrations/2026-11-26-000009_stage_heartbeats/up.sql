-- The last sign of life from the worker running a stage's current attempt. The
-- reconciler retries (or fails) a running stage whose worker went quiet.
ALTER TABLE stages ADD COLUMN heartbeat_at TIMESTAMPTZ;

CREATE INDEX stages_running ON stages (heartbeat_at) WHERE state = 'running';

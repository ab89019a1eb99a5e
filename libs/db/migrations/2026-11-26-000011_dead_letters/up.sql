-- Messages the broker gave up on (delivered too often, or rejected as unreadable),
-- kept for administrators to inspect and requeue. `message_id` is the envelope's
-- id, or the SHA-256 of an unreadable payload.
CREATE TABLE dead_letters (
    id           UUID PRIMARY KEY,
    message_id   TEXT NOT NULL UNIQUE,
    kind         TEXT NOT NULL CHECK (kind IN ('stage_work', 'stage_update', 'unreadable')),
    routing_key  TEXT NOT NULL,
    reason       TEXT NOT NULL,
    run_id       UUID,
    stage_id     UUID,
    payload      BYTEA NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    requeued_at  TIMESTAMPTZ
);

CREATE INDEX dead_letters_recent ON dead_letters (created_at DESC, id DESC);

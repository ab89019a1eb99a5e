-- The foundation: projects, their generation runs and stages, the durable event
-- log, assets, worker logs, the transactional outbox, idempotency keys and the
-- inbox that makes message handling idempotent.
--
-- States are short text values guarded by CHECK constraints: readable in psql,
-- and a new state is one constraint change away (expand, then contract).

CREATE TABLE projects (
    id               uuid PRIMARY KEY,
    owner            text        NOT NULL,
    title            text        NOT NULL,
    prompt           text        NOT NULL,
    duration_seconds integer     NOT NULL CHECK (duration_seconds > 0),
    has_vocals       boolean     NOT NULL,
    style_strength   real        NOT NULL CHECK (style_strength >= 0 AND style_strength <= 1),
    -- An unsigned 64-bit seed stored bit for bit in a signed column.
    seed             bigint,
    lyrics           text,
    state            text        NOT NULL DEFAULT 'draft'
        CHECK (state IN ('draft', 'generating', 'ready', 'failed', 'cancelled')),
    latest_run_id    uuid,
    -- The last stage event number handed out; events are numbered per project
    -- under this row's lock, so their order is their commit order.
    last_event_seq   bigint      NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    deleted_at       timestamptz
);

-- ListProjects: the owner's live projects, newest first, keyset-paginated.
CREATE INDEX projects_owner_recent ON projects (owner, created_at DESC, id DESC)
    WHERE deleted_at IS NULL;

CREATE TABLE runs (
    id               uuid PRIMARY KEY,
    project_id       uuid        NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    owner            text        NOT NULL,
    state            text        NOT NULL
        CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    -- The parameters frozen when the run was created.
    prompt           text        NOT NULL,
    duration_seconds integer     NOT NULL,
    has_vocals       boolean     NOT NULL,
    style_strength   real        NOT NULL,
    seed             bigint      NOT NULL,
    lyrics           text,
    error_code       text,
    error_message    text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    finished_at      timestamptz
);

CREATE INDEX runs_project_recent ON runs (project_id, created_at DESC);
-- At most one active run per project, enforced by the database itself.
CREATE UNIQUE INDEX runs_one_active_per_project ON runs (project_id)
    WHERE state IN ('queued', 'running');

CREATE TABLE stages (
    id            uuid PRIMARY KEY,
    run_id        uuid        NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    kind          text        NOT NULL
        CHECK (kind IN ('lyrics', 'composition', 'arrangement', 'vocals', 'mix', 'master')),
    state         text        NOT NULL
        CHECK (state IN ('pending', 'queued', 'running', 'succeeded', 'failed', 'cancelled', 'skipped')),
    attempt       integer     NOT NULL DEFAULT 0,
    progress      real        NOT NULL DEFAULT 0,
    provider      text        NOT NULL DEFAULT '',
    error_code    text,
    error_message text,
    queued_at     timestamptz,
    started_at    timestamptz,
    finished_at   timestamptz,
    UNIQUE (run_id, kind)
);

-- Queue position: queued stages in the order they were queued.
CREATE INDEX stages_waiting ON stages (queued_at) WHERE state = 'queued';
-- ETA: recent durations of finished stages of each kind.
CREATE INDEX stages_recent_success ON stages (kind, finished_at DESC) WHERE state = 'succeeded';

CREATE TABLE stage_events (
    project_id  uuid        NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    seq         bigint      NOT NULL,
    run_id      uuid        NOT NULL,
    event_type  text        NOT NULL,
    stage_kind  text,
    stage_state text,
    run_state   text        NOT NULL,
    progress    real        NOT NULL DEFAULT 0,
    attempt     integer     NOT NULL DEFAULT 0,
    message     text        NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, seq)
);

CREATE TABLE assets (
    id           uuid PRIMARY KEY,
    project_id   uuid        NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    run_id       uuid        NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    stage_kind   text        NOT NULL,
    kind         text        NOT NULL,
    file_name    text        NOT NULL,
    object_key   text        NOT NULL,
    content_type text        NOT NULL,
    size_bytes   bigint      NOT NULL CHECK (size_bytes >= 0),
    sha256       text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (run_id, file_name)
);

CREATE INDEX assets_project ON assets (project_id, created_at, id);

CREATE TABLE job_logs (
    id         bigserial PRIMARY KEY,
    run_id     uuid        NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    stage_kind text        NOT NULL,
    attempt    integer     NOT NULL,
    severity   smallint    NOT NULL,
    message    text        NOT NULL,
    logged_at  timestamptz NOT NULL
);

CREATE INDEX job_logs_run ON job_logs (run_id, id);

-- Messages written in the same transaction as the state change that causes them,
-- published to RabbitMQ by the relay afterwards.
CREATE TABLE outbox (
    id           bigserial PRIMARY KEY,
    message_id   uuid        NOT NULL UNIQUE,
    exchange     text        NOT NULL,
    routing_key  text        NOT NULL,
    payload      bytea       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz,
    attempts     integer     NOT NULL DEFAULT 0
);

CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;

CREATE TABLE idempotency_keys (
    owner        text        NOT NULL,
    method       text        NOT NULL,
    request_id   text        NOT NULL,
    -- What the first request asked for: a retry asking something else is refused.
    request_hash text        NOT NULL,
    resource_id  uuid        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (owner, method, request_id)
);

-- Ids of messages already applied, so a redelivered one changes nothing.
CREATE TABLE inbox (
    message_id   uuid PRIMARY KEY,
    processed_at timestamptz NOT NULL DEFAULT now()
);

-- Sensitive actions: who, what, on what, from where, when. Never secrets.
CREATE TABLE audit_events (
    id              UUID PRIMARY KEY,
    actor           TEXT NOT NULL,
    action          TEXT NOT NULL,
    target          TEXT NOT NULL,
    client_address  TEXT,
    detail          TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- UUIDv7 ids order by time: pages walk the primary key backwards.
CREATE INDEX audit_events_actor ON audit_events (actor, id DESC);

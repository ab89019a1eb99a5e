-- Credits: a balance per owner and a ledger explaining every change to it. A run
-- reserves its cost when it is created (in the same transaction), and is then
-- either captured (completed) or refunded (failed, cancelled) exactly once: the
-- unique (run_id, kind) makes a repeated settlement a no-op.
CREATE TABLE credit_balances (
    owner       TEXT PRIMARY KEY,
    balance     BIGINT NOT NULL CHECK (balance >= 0),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE credit_ledger (
    id          UUID PRIMARY KEY,
    owner       TEXT NOT NULL,
    run_id      UUID,
    kind        TEXT NOT NULL CHECK (kind IN ('grant', 'reserve', 'capture', 'refund')),
    amount      BIGINT NOT NULL CHECK (amount >= 0),
    actor       TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (run_id, kind)
);

CREATE INDEX credit_ledger_owner ON credit_ledger (owner, id DESC);

-- An administrator can dismiss a dead letter that should not run again (stage
-- work whose stage has failed, bytes that are not a message): it stays listed,
-- with who decided and why in the audit log, but no longer counts as pending.
ALTER TABLE dead_letters
    ADD COLUMN dismissed_at   TIMESTAMPTZ,
    ADD COLUMN dismiss_reason TEXT;

ALTER TABLE dead_letters
    DROP COLUMN dismissed_at,
    DROP COLUMN dismiss_reason;

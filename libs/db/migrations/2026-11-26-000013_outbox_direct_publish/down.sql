ALTER TABLE outbox DROP COLUMN relay_after;

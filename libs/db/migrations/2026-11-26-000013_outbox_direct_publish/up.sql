-- Rows their writer publishes itself right after its commit: the relay leaves
-- them alone until `relay_after`, and sends them then only if the writer died
-- before the broker confirmed them. NULL: the relay's at once.
ALTER TABLE outbox ADD COLUMN relay_after timestamptz;

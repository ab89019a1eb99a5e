DROP INDEX stages_running;
ALTER TABLE stages DROP COLUMN heartbeat_at;

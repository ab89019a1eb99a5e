DROP INDEX idempotency_keys_resource;
DROP INDEX dead_letters_run;
DROP INDEX users_unpurged;
ALTER TABLE users DROP COLUMN purged_at;
DROP INDEX projects_deleted;

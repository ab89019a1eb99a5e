DROP INDEX projects_objects_unreleased;
ALTER TABLE projects DROP COLUMN objects_released_at;

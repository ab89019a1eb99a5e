DROP TABLE share_links;
DROP INDEX runs_owner_recent;
ALTER TABLE users DROP COLUMN plan;

DROP TABLE storage_grants;

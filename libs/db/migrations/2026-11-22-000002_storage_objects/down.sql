DROP TABLE storage_deleted_projects;
DROP TABLE storage_objects;

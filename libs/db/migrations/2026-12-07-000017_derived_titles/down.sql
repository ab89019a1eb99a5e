ALTER TABLE projects DROP COLUMN title_derived;

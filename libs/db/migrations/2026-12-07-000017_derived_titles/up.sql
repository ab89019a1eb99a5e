-- Whether a project's title was made from its prompt (no title given): such a
-- title is the owner's own words and never shown on a gift page.
ALTER TABLE projects ADD COLUMN title_derived BOOLEAN NOT NULL DEFAULT false;

-- Titles made before this column: those equal to what the derivation gives.
UPDATE projects
SET title_derived = true
WHERE title = 'Untitled song'
   OR title = left(prompt, 60) || CASE WHEN char_length(prompt) > 60 THEN '…' ELSE '' END;

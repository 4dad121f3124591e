-- Cache-Control a distribution sends with the artifacts it serves, instead
-- of the server-wide setting (NULL: the setting).
ALTER TABLE distributions ADD COLUMN cache_control TEXT;

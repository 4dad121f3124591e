-- file_content loses UNIQUE (relative_path, digest): content (pulp_type,
-- natural_key), with natural keys "<digest>:<path>", already makes a path and
-- digest unique, and the file plugin finds units by path through content
-- (pulp_type, repo_key) (repo_key is the path). A sync added one scattered
-- entry per unit to this index.
ALTER TABLE file_content DROP CONSTRAINT file_content_relative_path_digest_key;

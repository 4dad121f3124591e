-- file_content loses UNIQUE (relative_path, digest): content (pulp_type,
-- natural_key), with natural keys "<digest>:<path>", already makes a path and
-- digest unique, and the file plugin finds units by path through content
-- (pulp_type, repo_key) (repo_key is the path). A sync added one scattered
-- entry per unit to this index. SQLite drops a table constraint only by
-- rebuilding the table; nothing references file_content.
CREATE TABLE file_content_new (
    content_id    TEXT PRIMARY KEY REFERENCES content (id) ON DELETE CASCADE,
    relative_path TEXT NOT NULL,
    digest        TEXT NOT NULL
);
INSERT INTO file_content_new (content_id, relative_path, digest) SELECT content_id, relative_path, digest FROM file_content;
DROP TABLE file_content;
ALTER TABLE file_content_new RENAME TO file_content;

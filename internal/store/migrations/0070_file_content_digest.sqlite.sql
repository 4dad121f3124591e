-- A sync added one scattered entry per unit to this index, and only the file
-- content list's digest filter read it; on SQLite that filter now finds the
-- units through content (pulp_type, natural_key), whose keys begin with the
-- digest. PostgreSQL keeps it (its collation may not order the natural-key
-- range bytewise, and it logs rows rather than whole index pages).
DROP INDEX file_content_digest;

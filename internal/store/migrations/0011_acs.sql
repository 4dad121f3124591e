-- Alternate content sources. Their tables came with 0006
-- (alternate_content_sources, alternate_content_source_paths: the remote is
-- protected, paths go with their ACS, a path's hidden repository is set NULL
-- if it is deleted so the next refresh makes a new one). These indexes serve
-- the list, the remote-delete check and the lookups of ACS sources by
-- sha256 (remote_artifacts_sha256 → content → the hidden repository's path).
CREATE INDEX alternate_content_sources_created ON alternate_content_sources (created, id);
CREATE INDEX alternate_content_sources_remote ON alternate_content_sources (remote_id);
CREATE INDEX alternate_content_source_paths_repository ON alternate_content_source_paths (repository_id);

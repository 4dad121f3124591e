-- The content app finds the paths below a directory with a byte-order
-- range (relative_path COLLATE "C" >= 'dir/' AND < 'dir0'): LIKE 'dir/%'
-- uses no index under a locale collation, so listings and directory
-- checks read the whole repository. These indexes serve that range.
CREATE INDEX content_artifacts_relpath_c ON content_artifacts (relative_path COLLATE "C");
CREATE INDEX published_artifacts_path_c ON published_artifacts (publication_id, relative_path COLLATE "C");

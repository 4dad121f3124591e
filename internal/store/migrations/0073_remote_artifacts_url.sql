-- remote_artifacts (remote_id, url) took one scattered entry per remote
-- artifact, a fifth of an on_demand sync's index writes. Lookups by
-- remote (reclaim, repair, the cascade when a remote is deleted, the
-- deletion guard) need only remote_id, whose entries a sync appends in
-- order; the pull-through lookup by URL goes through content_artifacts
-- (relative_path) instead.
CREATE INDEX remote_artifacts_remote ON remote_artifacts (remote_id);
DROP INDEX remote_artifacts_url;

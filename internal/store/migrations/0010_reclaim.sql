-- Content artifacts whose bytes are not stored (on_demand, streamed or
-- reclaimed content), in id order. A repository version's download walks
-- them in keyset pages, which without this index would sort every member
-- of the version once per page.
CREATE INDEX content_artifacts_missing ON content_artifacts (id) WHERE artifact_id IS NULL;

-- Content units (Pulp's master Content) and the artifacts they consist of.
-- Plugins keep their own detail tables keyed by content id.
CREATE TABLE content (
    id                    TEXT PRIMARY KEY,
    created               BIGINT NOT NULL,
    last_updated          BIGINT NOT NULL,
    pulp_type             TEXT NOT NULL,
    upstream_id           TEXT,
    timestamp_of_interest BIGINT NOT NULL,
    -- natural_key identifies a unit within its type (e.g. path + digest);
    -- repo_key decides which unit a new one replaces inside a repository.
    natural_key           TEXT NOT NULL,
    repo_key              TEXT NOT NULL,
    pulp_labels           TEXT NOT NULL DEFAULT '{}',
    UNIQUE (pulp_type, natural_key)
);
CREATE INDEX content_created ON content (created, id);
CREATE INDEX content_type_created ON content (pulp_type, created, id);
CREATE INDEX content_toi ON content (timestamp_of_interest);
CREATE INDEX content_repo_key ON content (pulp_type, repo_key);

-- artifact_id is NULL for on-demand content not yet downloaded. Artifacts
-- are protected: no ON DELETE, so a referenced artifact cannot vanish.
CREATE TABLE content_artifacts (
    id            TEXT PRIMARY KEY,
    created       BIGINT NOT NULL,
    last_updated  BIGINT NOT NULL,
    content_id    TEXT NOT NULL REFERENCES content (id) ON DELETE CASCADE,
    artifact_id   TEXT REFERENCES artifacts (id),
    relative_path TEXT NOT NULL,
    UNIQUE (content_id, relative_path)
);
CREATE INDEX content_artifacts_artifact ON content_artifacts (artifact_id);
CREATE INDEX content_artifacts_relpath ON content_artifacts (relative_path);

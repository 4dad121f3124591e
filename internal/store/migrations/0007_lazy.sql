-- Remotes that synced content into a repository. The content app fetches a
-- repository's lazy content only through these (and its current remote), so
-- one user's credentials never serve another user's repository.
CREATE TABLE repository_remotes (
    repository_id TEXT NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    remote_id     TEXT NOT NULL REFERENCES remotes (id) ON DELETE CASCADE,
    created       BIGINT NOT NULL,
    PRIMARY KEY (repository_id, remote_id)
);
CREATE INDEX repository_remotes_remote ON repository_remotes (remote_id);

-- One upstream fetch per artifact across content processes: the process
-- holding the lease fetches into spool (a storage temp file others can tail).
CREATE TABLE lazy_fetches (
    sha256  TEXT PRIMARY KEY,
    owner   TEXT NOT NULL,
    spool   TEXT NOT NULL,
    size    BIGINT NOT NULL,
    expires BIGINT NOT NULL
);

-- Pull-through distributions find what they fetched before by URL.
CREATE INDEX remote_artifacts_url ON remote_artifacts (remote_id, url);

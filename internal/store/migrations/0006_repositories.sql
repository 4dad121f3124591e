-- Remotes, repositories and their immutable versions, remote sources of
-- content, publications and distributions (Pulp's core models), plus the
-- file plugin's detail tables. Labels are JSON objects on the labelled row.

CREATE TABLE remotes (
    id                   TEXT PRIMARY KEY,
    created              BIGINT NOT NULL,
    last_updated         BIGINT NOT NULL,
    pulp_type            TEXT NOT NULL,
    name                 TEXT NOT NULL UNIQUE,
    url                  TEXT NOT NULL,
    policy               TEXT NOT NULL,
    ca_cert              TEXT,
    client_cert          TEXT,
    client_key           TEXT,
    tls_validation       BOOLEAN NOT NULL,
    proxy_url            TEXT,
    proxy_username       TEXT,
    proxy_password       TEXT,
    username             TEXT,
    password             TEXT,
    download_concurrency INTEGER,
    max_retries          INTEGER,
    total_timeout        DOUBLE PRECISION,
    connect_timeout      DOUBLE PRECISION,
    sock_connect_timeout DOUBLE PRECISION,
    sock_read_timeout    DOUBLE PRECISION,
    headers              TEXT NOT NULL DEFAULT '[]',
    rate_limit           INTEGER,
    pulp_labels          TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX remotes_created ON remotes (created, id);

CREATE TABLE repositories (
    id                   TEXT PRIMARY KEY,
    created              BIGINT NOT NULL,
    last_updated         BIGINT NOT NULL,
    pulp_type            TEXT NOT NULL,
    name                 TEXT NOT NULL UNIQUE,
    description          TEXT,
    next_version         INTEGER NOT NULL,
    retain_repo_versions INTEGER,
    retain_checkpoints   INTEGER,
    remote_id            TEXT REFERENCES remotes (id) ON DELETE SET NULL,
    user_hidden          BOOLEAN NOT NULL DEFAULT FALSE,
    pulp_labels          TEXT NOT NULL DEFAULT '{}',
    -- file plugin fields
    autopublish          BOOLEAN NOT NULL DEFAULT FALSE,
    manifest             TEXT,
    last_sync_details    TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX repositories_created ON repositories (created, id);
CREATE INDEX repositories_remote ON repositories (remote_id);

CREATE TABLE repository_versions (
    id              TEXT PRIMARY KEY,
    created         BIGINT NOT NULL,
    last_updated    BIGINT NOT NULL,
    repository_id   TEXT NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    number          INTEGER NOT NULL,
    complete        BOOLEAN NOT NULL DEFAULT FALSE,
    base_version_id TEXT REFERENCES repository_versions (id) ON DELETE SET NULL,
    info            TEXT NOT NULL DEFAULT '{}',
    UNIQUE (repository_id, number)
);
CREATE INDEX repository_versions_created ON repository_versions (created, id);

-- Membership intervals: a unit is in version N of its repository when
-- version_added <= N and (version_removed IS NULL or version_removed > N).
-- Numbers, not version ids, so membership queries need no join.
CREATE TABLE repository_content (
    id              TEXT PRIMARY KEY,
    created         BIGINT NOT NULL,
    repository_id   TEXT NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    content_id      TEXT NOT NULL REFERENCES content (id),
    version_added   INTEGER NOT NULL,
    version_removed INTEGER
);
CREATE INDEX repository_content_current ON repository_content (repository_id, version_removed, content_id);
CREATE INDEX repository_content_added ON repository_content (repository_id, version_added);
CREATE INDEX repository_content_removed ON repository_content (repository_id, version_removed) WHERE version_removed IS NOT NULL;
CREATE INDEX repository_content_content ON repository_content (content_id);

CREATE TABLE repository_version_counts (
    version_id   TEXT NOT NULL REFERENCES repository_versions (id) ON DELETE CASCADE,
    count_type   TEXT NOT NULL, -- A added, R removed, P present
    content_type TEXT NOT NULL,
    count        BIGINT NOT NULL,
    PRIMARY KEY (version_id, count_type, content_type)
);

CREATE TABLE remote_artifacts (
    id                  TEXT PRIMARY KEY,
    created             BIGINT NOT NULL,
    last_updated        BIGINT NOT NULL,
    content_artifact_id TEXT NOT NULL REFERENCES content_artifacts (id) ON DELETE CASCADE,
    remote_id           TEXT NOT NULL REFERENCES remotes (id) ON DELETE CASCADE,
    url                 TEXT NOT NULL,
    size                BIGINT,
    sha224              TEXT,
    sha256              TEXT,
    sha384              TEXT,
    sha512              TEXT,
    failed_at           BIGINT,
    UNIQUE (content_artifact_id, remote_id)
);
CREATE INDEX remote_artifacts_remote ON remote_artifacts (remote_id);
CREATE INDEX remote_artifacts_sha256 ON remote_artifacts (sha256);

CREATE TABLE publications (
    id                    TEXT PRIMARY KEY,
    created               BIGINT NOT NULL,
    last_updated          BIGINT NOT NULL,
    pulp_type             TEXT NOT NULL,
    repository_version_id TEXT NOT NULL REFERENCES repository_versions (id) ON DELETE CASCADE,
    complete              BOOLEAN NOT NULL DEFAULT FALSE,
    pass_through          BOOLEAN NOT NULL DEFAULT FALSE,
    checkpoint            BOOLEAN NOT NULL DEFAULT FALSE,
    manifest              TEXT
);
CREATE INDEX publications_created ON publications (created, id);
CREATE INDEX publications_version ON publications (repository_version_id, complete, created);

-- Files a publication serves besides pass-through content: metadata it
-- wrote (artifact_id) or content it placed at a path (content_artifact_id).
CREATE TABLE published_artifacts (
    id                  TEXT PRIMARY KEY,
    created             BIGINT NOT NULL,
    publication_id      TEXT NOT NULL REFERENCES publications (id) ON DELETE CASCADE,
    relative_path       TEXT NOT NULL,
    content_artifact_id TEXT REFERENCES content_artifacts (id),
    artifact_id         TEXT REFERENCES artifacts (id),
    UNIQUE (publication_id, relative_path)
);
CREATE INDEX published_artifacts_artifact ON published_artifacts (artifact_id);

CREATE TABLE content_guards (
    id           TEXT PRIMARY KEY,
    created      BIGINT NOT NULL,
    last_updated BIGINT NOT NULL,
    pulp_type    TEXT NOT NULL,
    name         TEXT NOT NULL UNIQUE,
    description  TEXT,
    settings     TEXT NOT NULL DEFAULT '{}'
);

CREATE TABLE distributions (
    id                    TEXT PRIMARY KEY,
    created               BIGINT NOT NULL,
    last_updated          BIGINT NOT NULL,
    pulp_type             TEXT NOT NULL,
    name                  TEXT NOT NULL UNIQUE,
    base_path             TEXT NOT NULL UNIQUE,
    hidden                BOOLEAN NOT NULL DEFAULT FALSE,
    checkpoint            BOOLEAN NOT NULL DEFAULT FALSE,
    pulp_labels           TEXT NOT NULL DEFAULT '{}',
    content_guard_id      TEXT REFERENCES content_guards (id) ON DELETE SET NULL,
    publication_id        TEXT REFERENCES publications (id) ON DELETE SET NULL,
    repository_id         TEXT REFERENCES repositories (id) ON DELETE SET NULL,
    repository_version_id TEXT REFERENCES repository_versions (id) ON DELETE SET NULL,
    remote_id             TEXT REFERENCES remotes (id) ON DELETE SET NULL
);
CREATE INDEX distributions_created ON distributions (created, id);
CREATE INDEX distributions_repository ON distributions (repository_id);
CREATE INDEX distributions_publication ON distributions (publication_id);
CREATE INDEX distributions_version ON distributions (repository_version_id);

-- The file plugin's content detail: FileContent(relative_path, digest).
CREATE TABLE file_content (
    content_id    TEXT PRIMARY KEY REFERENCES content (id) ON DELETE CASCADE,
    relative_path TEXT NOT NULL,
    digest        TEXT NOT NULL,
    UNIQUE (relative_path, digest)
);
CREATE INDEX file_content_digest ON file_content (digest);

CREATE TABLE alternate_content_sources (
    id             TEXT PRIMARY KEY,
    created        BIGINT NOT NULL,
    last_updated   BIGINT NOT NULL,
    pulp_type      TEXT NOT NULL,
    name           TEXT NOT NULL UNIQUE,
    last_refreshed BIGINT,
    remote_id      TEXT NOT NULL REFERENCES remotes (id)
);

CREATE TABLE alternate_content_source_paths (
    id            TEXT PRIMARY KEY,
    acs_id        TEXT NOT NULL REFERENCES alternate_content_sources (id) ON DELETE CASCADE,
    path          TEXT NOT NULL,
    repository_id TEXT REFERENCES repositories (id) ON DELETE SET NULL,
    UNIQUE (acs_id, path)
);

-- Core schema: users, app status, tasks and their locks, artifacts, uploads.
-- One schema for SQLite and PostgreSQL: ids are text (uuid7), timestamps are
-- integer microseconds since the Unix epoch, JSON is text.

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    created       BIGINT NOT NULL,
    last_updated  BIGINT NOT NULL,
    username      TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    is_superuser  BOOLEAN NOT NULL DEFAULT FALSE
);

-- One row per running pith process role (worker, api, content).
CREATE TABLE app_status (
    id             TEXT PRIMARY KEY,
    created        BIGINT NOT NULL,
    last_updated   BIGINT NOT NULL,
    name           TEXT NOT NULL UNIQUE,
    app_type       TEXT NOT NULL,
    last_heartbeat BIGINT NOT NULL,
    versions       TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX app_status_type_heartbeat ON app_status (app_type, last_heartbeat);

CREATE TABLE task_groups (
    id                   TEXT PRIMARY KEY,
    created              BIGINT NOT NULL,
    last_updated         BIGINT NOT NULL,
    description          TEXT NOT NULL DEFAULT '',
    all_tasks_dispatched BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX task_groups_created ON task_groups (created, id);

CREATE TABLE tasks (
    id                 TEXT PRIMARY KEY,
    created            BIGINT NOT NULL,
    last_updated       BIGINT NOT NULL,
    name               TEXT NOT NULL,
    state              TEXT NOT NULL,
    logging_cid        TEXT NOT NULL DEFAULT '',
    created_by         TEXT,
    unblocked_at       BIGINT,
    started_at         BIGINT,
    finished_at        BIGINT,
    error              TEXT,
    worker             TEXT,
    parent_task_id     TEXT REFERENCES tasks (id) ON DELETE SET NULL,
    task_group_id      TEXT REFERENCES task_groups (id) ON DELETE SET NULL,
    args               TEXT NOT NULL DEFAULT '{}',
    result             TEXT,
    immediate          BOOLEAN NOT NULL DEFAULT FALSE,
    reserved_resources TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX tasks_created ON tasks (created, id);
CREATE INDEX tasks_state_created ON tasks (state, created, id);
CREATE INDEX tasks_name_created ON tasks (name, created);
CREATE INDEX tasks_started ON tasks (started_at);
CREATE INDEX tasks_finished ON tasks (finished_at);
CREATE INDEX tasks_group ON tasks (task_group_id);
CREATE INDEX tasks_parent ON tasks (parent_task_id);
CREATE INDEX tasks_worker_state ON tasks (worker, state);
CREATE INDEX tasks_cid ON tasks (logging_cid);

-- The resources a task reserved, kept for the task's lifetime (filtering).
CREATE TABLE task_resources (
    task_id   TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    resource  TEXT NOT NULL,
    exclusive BOOLEAN NOT NULL,
    PRIMARY KEY (task_id, resource)
);
CREATE INDEX task_resources_resource ON task_resources (resource, exclusive);

-- Locks held by incomplete tasks only; rows go away when the task ends, so
-- the conflict check never scans history.
CREATE TABLE task_locks (
    task_id   TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    resource  TEXT NOT NULL,
    exclusive BOOLEAN NOT NULL,
    created   BIGINT NOT NULL,
    PRIMARY KEY (task_id, resource)
);
CREATE INDEX task_locks_resource ON task_locks (resource, created, task_id);

CREATE TABLE progress_reports (
    id       TEXT PRIMARY KEY,
    task_id  TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    seq      INTEGER NOT NULL,
    message  TEXT NOT NULL,
    code     TEXT NOT NULL,
    state    TEXT NOT NULL,
    total    BIGINT,
    done     BIGINT NOT NULL DEFAULT 0,
    suffix   TEXT
);
CREATE INDEX progress_reports_task ON progress_reports (task_id, seq);

CREATE TABLE created_resources (
    task_id TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    seq     INTEGER NOT NULL,
    href    TEXT NOT NULL,
    PRIMARY KEY (task_id, seq)
);
CREATE INDEX created_resources_href ON created_resources (href);

CREATE TABLE artifacts (
    id                    TEXT PRIMARY KEY,
    created               BIGINT NOT NULL,
    last_updated          BIGINT NOT NULL,
    file                  TEXT NOT NULL,
    size                  BIGINT NOT NULL,
    md5                   TEXT,
    sha1                  TEXT,
    sha224                TEXT,
    sha256                TEXT NOT NULL UNIQUE,
    sha384                TEXT UNIQUE,
    sha512                TEXT UNIQUE,
    timestamp_of_interest BIGINT NOT NULL
);
CREATE INDEX artifacts_created ON artifacts (created, id);
CREATE INDEX artifacts_sha224 ON artifacts (sha224);
CREATE INDEX artifacts_md5 ON artifacts (md5);
CREATE INDEX artifacts_sha1 ON artifacts (sha1);
CREATE INDEX artifacts_toi ON artifacts (timestamp_of_interest);
CREATE INDEX artifacts_file ON artifacts (file);

CREATE TABLE uploads (
    id           TEXT PRIMARY KEY,
    created      BIGINT NOT NULL,
    last_updated BIGINT NOT NULL,
    size         BIGINT NOT NULL,
    completed    BIGINT
);
CREATE INDEX uploads_created ON uploads (created, id);

CREATE TABLE upload_chunks (
    upload_id TEXT NOT NULL REFERENCES uploads (id) ON DELETE CASCADE,
    "offset"  BIGINT NOT NULL,
    size      BIGINT NOT NULL,
    sha256    TEXT,
    created   BIGINT NOT NULL,
    PRIMARY KEY (upload_id, "offset")
);

-- Row counts per table, kept by the store in the same transaction as the
-- insert or delete, so an unfiltered count is O(1) at any table size.
CREATE TABLE row_counts (
    table_name TEXT PRIMARY KEY,
    n          BIGINT NOT NULL
);

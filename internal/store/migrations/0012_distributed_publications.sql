-- Which publications each distribution serves or served (Pulp's
-- DistributedPublication): the current one has no expiry; a superseded one
-- stays servable until expires_at, so clients holding old metadata keep
-- working across a switch.
CREATE TABLE distributed_publications (
    distribution_id TEXT NOT NULL REFERENCES distributions (id) ON DELETE CASCADE,
    publication_id  TEXT NOT NULL REFERENCES publications (id) ON DELETE CASCADE,
    created         BIGINT NOT NULL,
    expires_at      BIGINT,
    PRIMARY KEY (distribution_id, publication_id)
);
CREATE INDEX distributed_publications_publication ON distributed_publications (publication_id);

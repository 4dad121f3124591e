-- remote_artifacts_url (remote_id, url) serves every lookup by remote_id
-- (reclaim, repair, the cascade when a remote is deleted): this index only
-- cost a sync one more entry per remote artifact.
DROP INDEX remote_artifacts_remote;

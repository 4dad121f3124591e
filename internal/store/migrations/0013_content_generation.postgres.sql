-- A counter bumped by every change that can alter what the content app
-- serves at a path: distributions, publications becoming complete or going,
-- content guards, retained publications, and deletions that cascade into
-- them. The content app caches routing and resolution per generation, so it
-- needs no query per request to know its cache is current.
CREATE TABLE content_generation (id INTEGER PRIMARY KEY, n BIGINT NOT NULL);
INSERT INTO content_generation (id, n) VALUES (1, 1);
-- One bump and one notification per statement; listeners in other
-- processes drop their caches on it.
CREATE FUNCTION pith_content_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE g BIGINT;
BEGIN
    UPDATE content_generation SET n = n + 1 WHERE id = 1 RETURNING n INTO g;
    PERFORM pg_notify('pith_content_generation', g::text);
    RETURN NULL;
END $$;
CREATE TRIGGER distributions_gen AFTER INSERT OR UPDATE OR DELETE ON distributions FOR EACH STATEMENT EXECUTE FUNCTION pith_content_changed();
CREATE TRIGGER publications_gen AFTER UPDATE OR DELETE ON publications FOR EACH STATEMENT EXECUTE FUNCTION pith_content_changed();
CREATE TRIGGER content_guards_gen AFTER INSERT OR UPDATE OR DELETE ON content_guards FOR EACH STATEMENT EXECUTE FUNCTION pith_content_changed();
CREATE TRIGGER distributed_publications_gen AFTER INSERT OR UPDATE OR DELETE ON distributed_publications FOR EACH STATEMENT EXECUTE FUNCTION pith_content_changed();
CREATE TRIGGER repositories_gen AFTER DELETE ON repositories FOR EACH STATEMENT EXECUTE FUNCTION pith_content_changed();
CREATE TRIGGER repository_versions_gen AFTER DELETE ON repository_versions FOR EACH STATEMENT EXECUTE FUNCTION pith_content_changed();
CREATE TRIGGER remotes_gen AFTER DELETE ON remotes FOR EACH STATEMENT EXECUTE FUNCTION pith_content_changed();

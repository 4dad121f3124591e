-- A counter bumped by every change that can alter what the content app
-- serves at a path: distributions, publications becoming complete or going,
-- content guards, retained publications, and deletions that cascade into
-- them. The content app caches routing and resolution per generation, so it
-- needs no query per request to know its cache is current.
CREATE TABLE content_generation (id INTEGER PRIMARY KEY, n BIGINT NOT NULL);
INSERT INTO content_generation (id, n) VALUES (1, 1);
CREATE TRIGGER distributions_gen_ins AFTER INSERT ON distributions BEGIN UPDATE content_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER distributions_gen_upd AFTER UPDATE ON distributions BEGIN UPDATE content_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER distributions_gen_del AFTER DELETE ON distributions BEGIN UPDATE content_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER publications_gen_upd AFTER UPDATE ON publications BEGIN UPDATE content_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER publications_gen_del AFTER DELETE ON publications BEGIN UPDATE content_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER content_guards_gen_ins AFTER INSERT ON content_guards BEGIN UPDATE content_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER content_guards_gen_upd AFTER UPDATE ON content_guards BEGIN UPDATE content_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER content_guards_gen_del AFTER DELETE ON content_guards BEGIN UPDATE content_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER distributed_publications_gen_ins AFTER INSERT ON distributed_publications BEGIN UPDATE content_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER distributed_publications_gen_upd AFTER UPDATE ON distributed_publications BEGIN UPDATE content_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER distributed_publications_gen_del AFTER DELETE ON distributed_publications BEGIN UPDATE content_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER repositories_gen_del AFTER DELETE ON repositories BEGIN UPDATE content_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER repository_versions_gen_del AFTER DELETE ON repository_versions BEGIN UPDATE content_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER remotes_gen_del AFTER DELETE ON remotes BEGIN UPDATE content_generation SET n = n + 1 WHERE id = 1; END;

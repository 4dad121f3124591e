-- Alternate content sources coming and going change where lazy content may
-- be fetched from: the content generation follows them, so the lazy lookup
-- can leave out the ACS part of its query while no ACS exists
-- (Store.LazyPlan).
CREATE TRIGGER alternate_content_sources_gen_ins AFTER INSERT ON alternate_content_sources BEGIN UPDATE content_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER alternate_content_sources_gen_del AFTER DELETE ON alternate_content_sources BEGIN UPDATE content_generation SET n = n + 1 WHERE id = 1; END;

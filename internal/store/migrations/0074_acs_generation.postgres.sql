-- Alternate content sources coming and going change where lazy content may
-- be fetched from: the content generation follows them, so the lazy lookup
-- can leave out the ACS part of its query, whose planning cost most of a
-- cold request's database time, while no ACS exists (Store.LazyPlan).
CREATE TRIGGER alternate_content_sources_gen AFTER INSERT OR DELETE ON alternate_content_sources FOR EACH STATEMENT EXECUTE FUNCTION pith_content_changed();

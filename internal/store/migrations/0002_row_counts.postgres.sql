INSERT INTO row_counts (table_name, n) VALUES ('tasks', 0), ('artifacts', 0), ('uploads', 0), ('task_groups', 0);
-- Statement-level triggers with transition tables: one counter update per
-- statement, so bulk inserts do not hammer the counter row once per row.
CREATE FUNCTION pith_count_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE row_counts SET n = n + (SELECT COUNT(*) FROM new_rows) WHERE table_name = TG_TABLE_NAME;
    RETURN NULL;
END $$;
CREATE FUNCTION pith_count_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE row_counts SET n = n - (SELECT COUNT(*) FROM old_rows) WHERE table_name = TG_TABLE_NAME;
    RETURN NULL;
END $$;
CREATE TRIGGER tasks_count_ins AFTER INSERT ON tasks REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION pith_count_inserted();
CREATE TRIGGER tasks_count_del AFTER DELETE ON tasks REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION pith_count_deleted();
CREATE TRIGGER artifacts_count_ins AFTER INSERT ON artifacts REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION pith_count_inserted();
CREATE TRIGGER artifacts_count_del AFTER DELETE ON artifacts REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION pith_count_deleted();
CREATE TRIGGER uploads_count_ins AFTER INSERT ON uploads REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION pith_count_inserted();
CREATE TRIGGER uploads_count_del AFTER DELETE ON uploads REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION pith_count_deleted();
CREATE TRIGGER task_groups_count_ins AFTER INSERT ON task_groups REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION pith_count_inserted();
CREATE TRIGGER task_groups_count_del AFTER DELETE ON task_groups REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION pith_count_deleted();

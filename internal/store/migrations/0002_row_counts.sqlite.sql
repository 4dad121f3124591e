INSERT INTO row_counts (table_name, n) VALUES ('tasks', 0), ('artifacts', 0), ('uploads', 0), ('task_groups', 0);
CREATE TRIGGER tasks_count_ins AFTER INSERT ON tasks BEGIN UPDATE row_counts SET n = n + 1 WHERE table_name = 'tasks'; END;
CREATE TRIGGER tasks_count_del AFTER DELETE ON tasks BEGIN UPDATE row_counts SET n = n - 1 WHERE table_name = 'tasks'; END;
CREATE TRIGGER artifacts_count_ins AFTER INSERT ON artifacts BEGIN UPDATE row_counts SET n = n + 1 WHERE table_name = 'artifacts'; END;
CREATE TRIGGER artifacts_count_del AFTER DELETE ON artifacts BEGIN UPDATE row_counts SET n = n - 1 WHERE table_name = 'artifacts'; END;
CREATE TRIGGER uploads_count_ins AFTER INSERT ON uploads BEGIN UPDATE row_counts SET n = n + 1 WHERE table_name = 'uploads'; END;
CREATE TRIGGER uploads_count_del AFTER DELETE ON uploads BEGIN UPDATE row_counts SET n = n - 1 WHERE table_name = 'uploads'; END;
CREATE TRIGGER task_groups_count_ins AFTER INSERT ON task_groups BEGIN UPDATE row_counts SET n = n + 1 WHERE table_name = 'task_groups'; END;
CREATE TRIGGER task_groups_count_del AFTER DELETE ON task_groups BEGIN UPDATE row_counts SET n = n - 1 WHERE table_name = 'task_groups'; END;

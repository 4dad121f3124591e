-- tasks_list at millions of rows (measured by coreapi's BenchmarkTaskList).
--
-- Pages are ordered created DESC, id DESC. An index on a filter column that
-- ends in (created, id) yields a filtered page in order without sorting the
-- matches, and serves that filter's count as an index-only scan.
DROP INDEX tasks_name_created;
CREATE INDEX tasks_name_created ON tasks (name, created, id);

-- The reserved/exclusive/shared_resources filters find tasks by resource.
-- Carrying task_id makes that lookup index-only instead of one table read
-- per matching row.
DROP INDEX task_resources_resource;
CREATE INDEX task_resources_resource ON task_resources (resource, exclusive, task_id);

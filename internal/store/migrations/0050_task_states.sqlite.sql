-- A task is only ever in one of Pulp's six states. SQLite cannot add a
-- CHECK to an existing table, so triggers enforce it.
CREATE TRIGGER tasks_state_valid_ins BEFORE INSERT ON tasks
    WHEN NEW.state NOT IN ('waiting', 'running', 'canceling', 'completed', 'failed', 'canceled')
    BEGIN SELECT RAISE(ABORT, 'tasks_state_valid: invalid task state'); END;
CREATE TRIGGER tasks_state_valid_upd BEFORE UPDATE OF state ON tasks
    WHEN NEW.state NOT IN ('waiting', 'running', 'canceling', 'completed', 'failed', 'canceled')
    BEGIN SELECT RAISE(ABORT, 'tasks_state_valid: invalid task state'); END;

-- A task is only ever in one of Pulp's six states.
ALTER TABLE tasks ADD CONSTRAINT tasks_state_valid
    CHECK (state IN ('waiting', 'running', 'canceling', 'completed', 'failed', 'canceled'));

-- Claiming walks waiting tasks in dispatch order (immediate first). A
-- partial index keeps that walk proportional to the queue, not the history;
-- its leading state column lets SQLite's planner see it serves both the
-- filter and the order without statistics.
CREATE INDEX tasks_waiting ON tasks (state, immediate DESC, created, id) WHERE state = 'waiting';

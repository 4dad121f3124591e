-- Lease rows live for the seconds of one fetch and are worthless after a
-- crash (they expire), so they skip the write-ahead log: taking a lease must
-- not wait for a WAL flush in front of a client's first byte.
ALTER TABLE lazy_fetches SET UNLOGGED;

package store

// ACSSourcesQueryForTest is ACSSources' statement under EXPLAIN QUERY
// PLAN (SQLite), for checking that it uses indexes.
func ACSSourcesQueryForTest() string { return "EXPLAIN QUERY PLAN " + acsSourcesQuery }

//go:build race

package pipeline_test

// raceEnabled is set when testing with -race, under which the pure-Go
// SQLite runs some twenty times slower.
const raceEnabled = true

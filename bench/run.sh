#!/bin/sh
# Runs pith's sync benchmarks (plugins/file/sync_bench_test.go) and keeps
# the raw output in bench/results-<date>-<time>.txt. Set PITH_TEST_DATABASE_URL to
# include PostgreSQL, for example:
#   PITH_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test?sslmode=disable bench/run.sh
# COUNT repeats every benchmark (default 3); BENCH narrows the set.
set -eu
cd "$(dirname "$0")/.."
count=${COUNT:-3}
bench=${BENCH:-'BenchmarkSyncSmallFiles|BenchmarkSyncLargeFiles|BenchmarkNoopResync|BenchmarkOnDemandSync1M'}
out="bench/results-$(date -u +%Y-%m-%d-%H%M).txt"
go test -c -o /tmp/pith-file-bench.test ./plugins/file/
{
	echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(nproc) cores, $(uname -sr), load $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "# postgres: ${PITH_TEST_DATABASE_URL:+yes}"
	/tmp/pith-file-bench.test -test.run '^$' -test.bench "$bench" -test.benchtime 1x -test.count "$count" -test.timeout 2h
} 2>&1 | tee "$out"
rm -f /tmp/pith-file-bench.test

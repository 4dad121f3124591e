#!/bin/bash
# Content app benchmark (issue 4): a real `pith serve` (SQLite) beside nginx
# and Go's http.FileServer, all three serving the same files on 127.0.0.1 in
# the same run. The servers share one core (SERVER_CPU), wrk runs on the
# other (LOAD_CPU). Measures requests/s and latency for random 4 KiB and
# 64 KiB files, MB/s for one 100 MiB file, then runs the Go benchmark of
# latency into a 1,000,000-unit publication against a 10-unit one
# (internal/content/bench_test.go; PostgreSQL too when
# PITH_TEST_DATABASE_URL is set).
#
# Raw output and the summary go to bench/results-content-<date>-<time>.txt.
# Knobs: ROUNDS (3), DURATION (10 s a run), CONNS (32), BIG_CONNS (4),
# BIG_DURATION (20 s), FILES (100 per size), SERVER_CPU (0), LOAD_CPU (1),
# GO_BENCH (1; 0 skips the 1,000,000-unit benchmark), SCALE_TIME (60s of
# requests into the publications), PROFILE (0; 1 adds a perf profile of
# pith serving 4 KiB files to the results file).
set -euo pipefail
cd "$(dirname "$0")/.."
repo_dir=$PWD

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNS=${CONNS:-32}
BIG_CONNS=${BIG_CONNS:-4}
BIG_DURATION=${BIG_DURATION:-20}
FILES=${FILES:-100}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
GO_BENCH=${GO_BENCH:-1}
SCALE_TIME=${SCALE_TIME:-60s}

NGINX_PORT=18080
FS_PORT=18081
PITH_PORT=18082

# --- tools ------------------------------------------------------------------
missing=
for t in nginx wrk jq curl taskset; do
	command -v "$t" >/dev/null 2>&1 || missing=1
done
if [ -n "$missing" ]; then
	# Debian's postinst would start nginx on port 80; keep services down
	# while installing unless the machine already has a policy.
	policy=
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 755 /usr/sbin/policy-rc.d
		policy=1
	fi
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light wrk jq curl util-linux >/dev/null
	[ -n "$policy" ] && rm -f /usr/sbin/policy-rc.d
fi

tmp=$(mktemp -d /tmp/pith-content-bench.XXXXXX)
chmod 755 "$tmp" # nginx's worker runs as an unprivileged user
pids=()
cleanup() {
	for p in "${pids[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	wait "${pids[@]}" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

out="$repo_dir/bench/results-content-$(date -u +%Y-%m-%d-%H%M).txt"
exec > >(tee "$out") 2>&1

echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(nproc) cores, $(uname -sr), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# $(go version | cut -d' ' -f3-), $(nginx -v 2>&1), $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)"
echo "# pith at $(git rev-parse --short HEAD 2>/dev/null || echo '?'), uncommitted changes: $(git status --short -- internal cmd 2>/dev/null | wc -l) files"
echo "# servers on cpu $SERVER_CPU, wrk on cpu $LOAD_CPU; $ROUNDS rounds of ${DURATION}s, -c$CONNS (-c$BIG_CONNS, ${BIG_DURATION}s for 100 MiB)"
echo "# cpu% is the server's CPU time over the run's wall time (100 = one core); req/cpu-s is requests/s per core it used"

# --- data -------------------------------------------------------------------
data=$tmp/files
mkdir -p "$data/4k" "$data/64k" "$data/100m"
for i in $(seq 0 $((FILES - 1))); do
	n=$(printf %03d "$i")
	head -c 4096 /dev/urandom >"$data/4k/f-$n.bin"
	head -c 65536 /dev/urandom >"$data/64k/f-$n.bin"
done
head -c $((100 << 20)) /dev/urandom >"$data/100m/big.bin"
(cd "$data" && find 4k 64k 100m -type f | sort | while read -r f; do
	echo "$f,$(sha256sum "$f" | cut -d' ' -f1),$(stat -c %s "$f")"
done) >"$data/PULP_MANIFEST"

# --- servers ----------------------------------------------------------------
go build -o "$tmp/pith" ./cmd/pith
go build -o "$tmp/fileserver" ./bench/fileserver

mkdir -p "$tmp/nginx"
cat >"$tmp/nginx.conf" <<EOF
worker_processes 1;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log warn;
events { worker_connections 1024; }
http {
	access_log off;
	sendfile on;
	tcp_nopush on;
	# Go servers never close a keep-alive connection after N requests.
	keepalive_requests 1000000;
	types { }
	default_type application/octet-stream;
	client_body_temp_path $tmp/nginx/body;
	proxy_temp_path $tmp/nginx/proxy;
	fastcgi_temp_path $tmp/nginx/fastcgi;
	uwsgi_temp_path $tmp/nginx/uwsgi;
	scgi_temp_path $tmp/nginx/scgi;
	server {
		listen 127.0.0.1:$NGINX_PORT;
		root $data;
	}
}
EOF
taskset -c "$SERVER_CPU" nginx -p "$tmp/nginx" -e "$tmp/nginx/error.log" -c "$tmp/nginx.conf" -g 'daemon off;' &
nginx_pid=$!
pids+=("$nginx_pid")

taskset -c "$SERVER_CPU" "$tmp/fileserver" -addr "127.0.0.1:$FS_PORT" -root "$data" &
fs_pid=$!
pids+=("$fs_pid")

PITH_ADMIN_PASSWORD=bench taskset -c "$SERVER_CPU" "$tmp/pith" serve --addr "127.0.0.1:$PITH_PORT" \
	--data-dir "$tmp/pith-data" --allowed-import-paths "$data" --log-level warn &
pith_pid=$!
pids+=("$pith_pid")

wait_port() {
	for _ in $(seq 100); do
		curl -s -o /dev/null "http://127.0.0.1:$1/" && return 0
		sleep 0.1
	done
	echo "server on port $1 did not start" >&2
	exit 1
}
wait_port $NGINX_PORT
wait_port $FS_PORT
wait_port $PITH_PORT

# --- pith: sync the files from a file:// remote, publish, distribute ----------
api="http://127.0.0.1:$PITH_PORT"
call() { # method path [json]
	curl -sS --fail-with-body -u admin:bench -H 'Content-Type: application/json' -X "$1" "$api$2" ${3:+-d "$3"}
}
wait_task() { # task href → the task's JSON once finished
	local t state
	for _ in $(seq 600); do
		t=$(call GET "$1")
		state=$(jq -r .state <<<"$t")
		case $state in
		completed) echo "$t"; return 0 ;;
		failed | canceled) echo "task $1 $state: $t" >&2; exit 1 ;;
		esac
		sleep 0.2
	done
	echo "task $1 did not finish" >&2
	exit 1
}
setup_start=$(date +%s%N)
remote=$(call POST /pulp/api/v3/remotes/file/file/ \
	"{\"name\":\"bench\",\"url\":\"file://$data/PULP_MANIFEST\",\"policy\":\"immediate\"}" | jq -r .pulp_href)
repo=$(call POST /pulp/api/v3/repositories/file/file/ '{"name":"bench"}' | jq -r .pulp_href)
wait_task "$(call POST "${repo}sync/" "{\"remote\":\"$remote\"}" | jq -r .task)" >/dev/null
pub=$(wait_task "$(call POST /pulp/api/v3/publications/file/file/ "{\"repository\":\"$repo\"}" | jq -r .task)" |
	jq -r '.created_resources[0]')
wait_task "$(call POST /pulp/api/v3/distributions/file/file/ \
	"{\"name\":\"bench\",\"base_path\":\"bench\",\"publication\":\"$pub\"}" | jq -r .task)" >/dev/null
echo "# pith: synced $(wc -l <"$data/PULP_MANIFEST") files, published and distributed in $((($(date +%s%N) - setup_start) / 1000000)) ms"

declare -A base=(
	[nginx]="http://127.0.0.1:$NGINX_PORT/"
	[fileserver]="http://127.0.0.1:$FS_PORT/"
	[pith]="http://127.0.0.1:$PITH_PORT/pulp/content/bench/"
)
servers=(nginx fileserver pith)
# Every server must serve the same bytes before anything is measured.
for s in "${servers[@]}"; do
	for f in 4k/f-000.bin 64k/f-$(printf %03d $((FILES - 1))).bin 100m/big.bin; do
		curl -sS --fail "${base[$s]}$f" | cmp -s - "$data/$f" || { echo "$s serves $f wrong" >&2; exit 1; }
	done
done

# --- measurement --------------------------------------------------------------
cat >"$tmp/random.lua" <<'EOF'
-- GETs a random one of n files: <URL path><prefix>f-NNN.bin
local prefix, n
function init(args)
	prefix, n = wrk.path .. args[1], tonumber(args[2])
	math.randomseed(os.time())
end
function request()
	return wrk.format("GET", string.format("%sf-%03d.bin", prefix, math.random(0, n - 1)))
end
EOF

# cpu_ticks prints the user+system clock ticks of a server's processes
# (nginx: master and worker).
cpu_ticks() {
	local pids_=$1 sum=0 p
	[ "$1" = "$nginx_pid" ] && pids_="$nginx_pid $(pgrep -P "$nginx_pid" | tr '\n' ' ')"
	for p in $pids_; do
		sum=$((sum + $(awk '{print $14 + $15}' "/proc/$p/stat")))
	done
	echo $sum
}
declare -A pid_of=([nginx]=$nginx_pid [fileserver]=$fs_pid [pith]=$pith_pid)
hz=$(getconf CLK_TCK)

# to_ms converts wrk's 1.23us / 4.56ms / 1.2s to milliseconds.
to_ms() {
	awk -v v="$1" 'BEGIN {
		if (v ~ /us$/) { sub(/us$/, "", v); print v / 1000 }
		else if (v ~ /ms$/) { sub(/ms$/, "", v); print v + 0 }
		else if (v ~ /m$/) { sub(/m$/, "", v); print v * 60000 }
		else { sub(/s$/, "", v); print v * 1000 }
	}'
}

rows=$tmp/rows.tsv # size server round req/s MB/s p50-ms p99-ms cpu%
: >"$rows"
run() { # size server round url-path wrk-args…
	local size=$1 server=$2 round=$3 path=$4
	shift 4
	local t0 t1 o rps p50 p99 mbs cpu bytes
	t0=$(cpu_ticks "${pid_of[$server]}")
	# The URL goes first: what follows "--" are the script's arguments.
	o=$(taskset -c "$LOAD_CPU" wrk "${base[$server]}$path" --latency "$@" 2>&1) || true
	t1=$(cpu_ticks "${pid_of[$server]}")
	echo "## $size $server round $round"
	echo "$o"
	if grep -q -e 'Non-2xx' -e 'Socket errors' <<<"$o"; then
		echo "!! errors in $server $size round $round" >&2
	fi
	rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$o")
	p50=$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$o")")
	p99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$o")")
	case $size in 4k) bytes=4096 ;; 64k) bytes=65536 ;; *) bytes=$((100 << 20)) ;; esac
	mbs=$(awk -v r="$rps" -v b="$bytes" 'BEGIN {printf "%.1f", r * b / 1e6}')
	cpu=$(awk -v a="$t0" -v b="$t1" -v hz="$hz" -v d="$DURATION_NOW" 'BEGIN {printf "%.0f", (b - a) / hz / d * 100}')
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$size" "$server" "$round" "$rps" "$mbs" "$p50" "$p99" "$cpu" >>"$rows"
}

# Warm-up: page cache, connections, SQLite's pages.
for s in "${servers[@]}"; do
	taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d2s -s "$tmp/random.lua" "${base[$s]}" -- 4k/ "$FILES" >/dev/null
	taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d2s -s "$tmp/random.lua" "${base[$s]}" -- 64k/ "$FILES" >/dev/null
	curl -s -o /dev/null "${base[$s]}100m/big.bin"
done

for round in $(seq "$ROUNDS"); do
	for size in 4k 64k; do
		for s in "${servers[@]}"; do
			DURATION_NOW=$DURATION run "$size" "$s" "$round" "" -t1 -c"$CONNS" -d"${DURATION}s" -s "$tmp/random.lua" -- "$size/" "$FILES"
		done
	done
	for s in "${servers[@]}"; do
		DURATION_NOW=$BIG_DURATION run 100m "$s" "$round" 100m/big.bin -t1 -c"$BIG_CONNS" -d"${BIG_DURATION}s" --timeout 60s
	done
done

if [ "${PROFILE:-0}" = 1 ]; then
	echo "## perf profile of pith serving random 4 KiB files"
	perf record -F 999 -g -o "$tmp/perf.data" -p "$pith_pid" -- sleep "$DURATION" 2>/dev/null &
	perf_pid=$!
	taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"${DURATION}s" -s "$tmp/random.lua" "${base[pith]}" -- 4k/ "$FILES" >/dev/null
	wait "$perf_pid" || true
	# Cumulative: a function's share includes what it calls.
	perf report -i "$tmp/perf.data" --children --sort sym -g none --percent-limit 4 --stdio 2>&1 |
		grep -v -e '^$' -e '^#' | head -70 || true
fi

# --- summary ------------------------------------------------------------------
echo
echo "## summary: medians over $ROUNDS rounds [min-max]; ratios are of the medians"
awk -F'\t' '
function med(key,   n, i, j, t, a) {
	n = split(vals[key], a, " ")
	for (i = 2; i <= n; i++) { t = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
	lo[key] = a[1]; hi[key] = a[n]
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
{
	k = $1 SUBSEP $2
	vals[k "rps"] = vals[k "rps"] " " $4; vals[k "mbs"] = vals[k "mbs"] " " $5
	vals[k "p50"] = vals[k "p50"] " " $6; vals[k "p99"] = vals[k "p99"] " " $7; vals[k "cpu"] = vals[k "cpu"] " " $8
	vals[k "eff"] = vals[k "eff"] " " ($8 > 0 ? $4 / ($8 / 100) : 0)
	if (!seen[$1]++) sizes[++ns] = $1
}
END {
	split("nginx fileserver pith", sv, " ")
	printf "%-5s %-11s %22s %20s %8s %8s %5s %10s\n", "size", "server", "requests/s", "MB/s", "p50 ms", "p99 ms", "cpu%", "req/cpu-s"
	for (i = 1; i <= ns; i++) {
		sz = sizes[i]
		for (j = 1; j <= 3; j++) {
			k = sz SUBSEP sv[j]
			r = med(k "rps"); m = med(k "mbs"); c = med(k "cpu"); e = med(k "eff")
			rr[sv[j]] = r; ee[sv[j]] = e
			printf "%-5s %-11s %7.0f [%.0f-%.0f] %7.1f [%.0f-%.0f] %8.2f %8.2f %5.0f %10.0f\n", sz, sv[j], r, lo[k "rps"], hi[k "rps"], m, lo[k "mbs"], hi[k "mbs"], med(k "p50"), med(k "p99"), c, e
		}
		if (rr["fileserver"] > 0 && rr["nginx"] > 0 && ee["fileserver"] > 0 && ee["nginx"] > 0)
			printf "%-5s pith/fileserver %.2f, pith/nginx %.2f (requests/s); per CPU-second %.2f and %.2f\n", sz, rr["pith"] / rr["fileserver"], rr["pith"] / rr["nginx"], ee["pith"] / ee["fileserver"], ee["pith"] / ee["nginx"]
	}
}' "$rows"

if [ "$GO_BENCH" = 1 ]; then
	echo
	echo "## BenchmarkPublicationScale (internal/content), postgres: ${PITH_TEST_DATABASE_URL:+yes}"
	go test -c -o "$tmp/content.test" ./internal/content/
	(cd internal/content && "$tmp/content.test" -test.run '^$' -test.bench BenchmarkPublicationScale \
		-test.benchtime "$SCALE_TIME" -test.timeout 2h -test.v)
fi
echo "# raw output: $out"

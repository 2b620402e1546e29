#!/usr/bin/env bash
# The HTTP benchmark of the server against the machine's static-file ceiling, in one run:
#
#   bench/http.sh [SECONDS] [CONNECTIONS] [HOLDINGS]   (defaults 10 s, 32 connections)
#
# HOLDINGS: another holdings folder (such as one `holdgraph-bench scale --scales 100 --keep`
# leaves), loaded with load-etf-holdings and load-universes instead of the full setup.
# Starts nginx (ceiling.sh) and `holdgraph serve` on a fresh SQLite database set up from the
# real dataset (datasets/etf-holdings-2025-11/holdings), then measures with wrk (bench.sh):
#   small   nginx, a 25 B file               (the small-request ceiling)
#   large   nginx, a 130,993 B file          (the large-response ceiling, VTI's size)
#   q1file  nginx, q1's own answer as a file (the ceiling for an answer of q1's size: about
#           3 KB at 1x, 53 KB at 100x)
#   q1      stock(AAPL) -> ETFs with weights, the same text every time (response cache)
#   q1-new  the same question about rotating symbols, a new query text every request
#   vti     all 3,482 VTI holdings (symbol, weight)
#   reload  q1-new while a load of XLK commits every 10 s (alternating two files)
# and prints one JSON line each, the ratios to the ceilings, the CPU time the serving side
# (nginx's workers or the server) spent per request, user and kernel apart, and the server's
# RSS after.
# Needs wrk and nginx (apt-get install -y wrk nginx-light) and a release build
# (cargo build --release). Loopback only; every process it starts is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS="${1:-10}"; CONNS="${2:-32}"; SOURCE="${3:-}"
HERE="$PWD/bench"; BIN="${HOLDGRAPH_BIN:-$PWD/target/release/holdgraph}"
[ -x "$BIN" ] || { echo "build first: cargo build --release" >&2; exit 2; }
WORK="$(mktemp -d -t holdgraph-http-XXXXXX)"; chmod 755 "$WORK"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

mkdir -p "$WORK/nginx"; PREFIX="$WORK/nginx" "$HERE/ceiling.sh" > "$WORK/nginx.log" 2>&1 & PIDS+=($!)
DB="sqlite://$WORK/bench.db?mode=rwc"
if [ -z "$SOURCE" ]; then
  cp -r datasets/etf-holdings-2025-11/holdings "$WORK/holdings"
  "$BIN" --database-url "$DB" --holdings-dir "$WORK/holdings" setup > /dev/null 2>&1
else
  mkdir -p "$WORK/holdings"; cp "$SOURCE"/*.csv "$WORK/holdings/"
  "$BIN" --database-url "$DB" --holdings-dir "$WORK/holdings" load-etf-holdings --rebuild --force > /dev/null 2>&1
  "$BIN" --database-url "$DB" --holdings-dir "$WORK/holdings" load-universes --rebuild --force > /dev/null 2>&1
fi
PORT=18080
# The server's default level (warn), and info from the state for its snapshot builds' times;
# RUST_LOG overrides (holdgraph=info adds a line per request).
RUST_LOG="${RUST_LOG:-warn,holdgraph::state=info}" LOG_FORMAT=json "$BIN" --database-url "$DB" --holdings-dir "$WORK/holdings" serve --addr "127.0.0.1:$PORT" \
  > "$WORK/serve.log" 2>&1 & SERVER=$!; PIDS+=($SERVER)
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/health" > /dev/null && break; sleep 0.1; done
for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:5680/small.json" > /dev/null && break; sleep 0.1; done

GQL="http://127.0.0.1:$PORT/graphql"
printf '%s' '{"query":"{ stock(symbol: \"AAPL\") { etfs { weight group { name } } } }"}' > "$WORK/q1.json"
printf '%s' '{"query":"{ s__N__: stock(symbol: \"__SYM__\") { etfs { weight group { name } } } }"}' > "$WORK/q1-new.json"
printf '%s' '{"query":"{ etf(name: \"VTI\") { members(first: 5000) { edges { node { symbol weight } } } } }"}' > "$WORK/vti.json"
curl -s -H 'content-type: application/json' -d "{\"query\":\"{ stocks(first: 5000) { edges { node { symbol } } } }\"}" "$GQL" \
  | python3 -c 'import json,sys; [print(e["node"]["symbol"]) for e in json.load(sys.stdin)["data"]["stocks"]["edges"]]' > "$WORK/symbols.txt"
for f in q1 vti; do
  curl -s -H 'content-type: application/json' -d @"$WORK/$f.json" "$GQL" | grep -q '"errors"' && { echo "$f answers errors" >&2; exit 1; }
done

curl -s -H 'content-type: application/json' -d @"$WORK/q1.json" "$GQL" > "$WORK/nginx/www/q1.json"
chmod a+r "$WORK/nginx/www/q1.json"

# CPU the serving side spends: "user kernel" clock ticks summed over the given PIDs
# (/proc/PID/stat fields 14 and 15, counted after the command name, which may hold spaces).
ticks() { for p in "$@"; do sed 's/.*) //' "/proc/$p/stat"; done | awk '{u += $12; k += $13} END {print u, k}'; }
NGINX_WORKERS=$(pgrep -P "${PIDS[0]}" | tr '\n' ' ')
# measure NAME SERVING-PIDS -- COMMAND...: runs a wrk command and prints its JSON line, with
# the serving side's CPU per request added ("user_us", "kernel_us"); the line is left in RUN.
measure() {
  local name="$1" pids="$2"; shift 3
  local before after line
  # shellcheck disable=SC2086
  before=$(ticks $pids); line=$("$@"); after=$(ticks $pids)
  RUN=$(python3 - "$line" "$before" "$after" "$(getconf CLK_TCK)" <<'PY'
import json, sys
run = json.loads(sys.argv[1]); hz = int(sys.argv[4])
(u0, k0), (u1, k1) = (map(int, a.split()) for a in sys.argv[2:4])
n = max(run["requests"], 1)
run["user_us"] = round(1e6 * (u1 - u0) / hz / n, 2)
run["kernel_us"] = round(1e6 * (k1 - k0) / hz / n, 2)
print(json.dumps(run, separators=(",", ":")))
PY
)
  printf '%-7s %s\n' "$name" "$RUN"
}
measure small "$NGINX_WORKERS" -- bash "$HERE/bench.sh" http://127.0.0.1:5680/small.json - "$SECS" "$CONNS"; SMALL=$RUN
measure large "$NGINX_WORKERS" -- bash "$HERE/bench.sh" http://127.0.0.1:5680/large.json - "$SECS" "$CONNS"; LARGE=$RUN
measure q1file "$NGINX_WORKERS" -- bash "$HERE/bench.sh" http://127.0.0.1:5680/q1.json - "$SECS" "$CONNS"; Q1FILE=$RUN
measure q1 "$SERVER" -- bash "$HERE/bench.sh" "$GQL" "$WORK/q1.json" "$SECS" "$CONNS"; Q1=$RUN
measure q1-new "$SERVER" -- bash "$HERE/bench_rotate.sh" "$GQL" "$WORK/q1-new.json" "$WORK/symbols.txt" "$SECS" "$CONNS"; Q1N=$RUN
measure vti "$SERVER" -- bash "$HERE/bench.sh" "$GQL" "$WORK/vti.json" "$SECS" "$CONNS"; VTI=$RUN

# Reloads every 10 s while q1-new runs: XLK alternates between its file and the file less its
# last row.
RSECS=$(( SECS < 30 ? 30 : SECS ))
cp "$WORK/holdings/xlk_holdings.csv" "$WORK/xlk_full.csv"
head -n -1 "$WORK/xlk_full.csv" > "$WORK/xlk_short.csv"
(
  for i in $(seq 1 $(( RSECS / 10 ))); do
    sleep 10
    if [ $((i % 2)) = 1 ]; then cp "$WORK/xlk_short.csv" "$WORK/holdings/xlk_holdings.csv"; else cp "$WORK/xlk_full.csv" "$WORK/holdings/xlk_holdings.csv"; fi
    # Nothing but the load and a clock here: the time the new version was served comes from
    # the server's log afterwards (a python3 start per load and a curl every 2 ms until the
    # version was served took CPU from the two cores being measured).
    V=$("$BIN" --database-url "$DB" --holdings-dir "$WORK/holdings" load-etf-holdings --etf XLK --force --json 2> /dev/null \
      | grep -m1 '"data_version"' | tr -dc '0-9')
    echo "$V $(date +%s%N)" >> "$WORK/loads.txt"
  done
) & RELOADER=$!; PIDS+=($RELOADER)
RELOAD=$(bash "$HERE/bench_rotate.sh" "$GQL" "$WORK/q1-new.json" "$WORK/symbols.txt" "$RSECS" "$CONNS"); echo "reload  $RELOAD"
wait "$RELOADER" || true
RSS=$(awk '/VmRSS/ {print $2}' "/proc/$SERVER/status")
LAST=$(tail -n 1 "$WORK/loads.txt" | cut -d' ' -f1)
for _ in $(seq 1 100); do
  curl -s -H 'content-type: application/json' -d '{"query":"{ stats { dataVersion } }"}' "$GQL" | grep -q "\"dataVersion\":$LAST[,}]" && break
  sleep 0.02
done
curl -s -H 'content-type: application/json' -d '{"query":"{ stats { dataVersion } }"}' "$GQL" | grep -q "\"dataVersion\":$LAST[,}]" \
  || { echo "the last load's version $LAST is not served after 2 s" >&2; exit 1; }
# When each load's version was swapped in (the server's log line), after its command returned.
python3 - "$WORK/loads.txt" "$WORK/serve.log" <<'PY'
import json, sys
from datetime import datetime
swapped = {}
for line in open(sys.argv[2]):
    try:
        entry = json.loads(line)
    except ValueError:
        continue
    fields = entry.get("fields", {})
    if fields.get("message") == "serving a new data version":
        at = datetime.fromisoformat(entry["timestamp"].replace("Z", "+00:00")).timestamp()
        swapped[fields["data.version"]] = at
for line in open(sys.argv[1]):
    version, returned = line.split()
    at = swapped.get(int(version))
    if at is None:
        print(f"version {version} never served")
    else:
        print(f"version {version} served {1e3 * at - int(returned) / 1e6:.0f} ms after the load command returned")
PY
echo "snapshot builds (ms): $(grep 'serving a new data version' "$WORK/serve.log" | grep -o '"duration_ms":[0-9.]*' | cut -d: -f2 | tr '\n' ' ')"

python3 - "$SMALL" "$LARGE" "$Q1" "$Q1N" "$VTI" "$RELOAD" "$Q1FILE" "$(wc -c < "$WORK/nginx/www/q1.json")" "$RSS" <<'PY'
import json, sys
small, large, q1, q1n, vti, reload, q1file = (json.loads(a) for a in sys.argv[1:8])
size, rss = int(sys.argv[8]), int(sys.argv[9]) / 1024
print(f"q1 (stock -> ETFs)       {q1['rps']:>9.0f} req/s = {100*q1['rps']/small['rps']:5.1f} % of the small-file ceiling ({small['rps']:.0f}); p99 {q1['p99_ms']:.2f} ms")
print(f"q1's answer as a file    {q1file['rps']:>9.0f} req/s ({size:,} B, {100*q1file['rps']/small['rps']:.1f} % of the small file); q1 is {100*q1['rps']/q1file['rps']:.1f} % of it")
print(f"q1, new text each time   {q1n['rps']:>9.0f} req/s = {100*q1n['rps']/small['rps']:5.1f} % of the small-file ceiling; p99 {q1n['p99_ms']:.2f} ms")
print(f"all VTI holdings         {vti['rps']:>9.0f} req/s = {100*vti['rps']/large['rps']:5.1f} % of the large-file ceiling ({large['rps']:.0f}); p99 {vti['p99_ms']:.2f} ms")
print(f"q1 new text, reload/10 s {reload['rps']:>9.0f} req/s; p99 {reload['p99_ms']:.2f} ms; errors {reload['errors']} non-2xx {reload['non2xx']}")
print("CPU per request on the serving side (nginx's workers for the files, the server for the queries):")
for name, run in (("small file", small), ("large file", large), ("q1's answer as a file", q1file), ("q1", q1), ("q1, new text", q1n), ("all VTI holdings", vti)):
    print(f"  {name:<22} user {run['user_us']:6.2f} us  kernel {run['kernel_us']:6.2f} us")
print(f"server RSS after the runs: {rss:.1f} MB")
PY

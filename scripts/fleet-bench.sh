#!/usr/bin/env bash
# Fleet benchmark (issue 15): `methodd simulate` with N devices against a
# `methodd hub` on this machine, then one echo job over all of them beside
# the same fan-out done by `methodd invoke --where` in the same run.
#
#   scripts/fleet-bench.sh [N]        (default 10000)
#
# Prints a Markdown table: registration and connect times, RSS of the hub
# and of the simulator (total and per device), the job's and the fan-out's
# wall time and their results. Not a test: nothing is asserted; the numbers
# go to BENCHMARKS.md ("Fleet"). Only processes it starts are stopped, by
# PID; its temporary directory is removed at exit.
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-10000}"
work="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

go build -trimpath -tags nethttpomithttp2 -o "$work/methodd" .
m="$work/methodd"
printf 'version: 1\nconnection: {twin: false}\ndefaults: {concurrency: 100000}\nmethods:\n  echo: {reply: {payload: payload}}\n' > "$work/sim.yaml"
chmod 600 "$work/sim.yaml"

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1f", b - a}'; }
div() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1f", a / b}'; }

"$m" hub --dir "$work/hub" --mqtt-addr 127.0.0.1:0 --https-addr 127.0.0.1:0 --device fleet-bench-probe \
  --log-level warn 2> "$work/hub.log" &
pids+=($!); hub=$!
for _ in $(seq 300); do [ -s "$work/hub/hub.json" ] && break; sleep 0.1; done
hub_idle=$(rss_kb "$hub")

t0=$(now)
"$m" simulate --local --hub-dir "$work/hub" --devices "$n" --prefix fleet- --config "$work/sim.yaml" \
  2> "$work/sim.log" &
pids+=($!); sim=$!
until grep -q 'registered' "$work/sim.log"; do sleep 0.2; kill -0 "$sim"; done
t1=$(now)
until grep -q 'connected in' "$work/sim.log"; do sleep 0.2; kill -0 "$sim"; done
t2=$(now)
sleep 5 # let both processes settle before reading RSS
hub_rss=$(rss_kb "$hub"); sim_rss=$(rss_kb "$sim")

where="deviceId != 'fleet-bench-probe'"
t3=$(now)
set +e
"$m" job create --local --hub-dir "$work/hub" --where "$where" echo '{"n":1}' --wait > "$work/job.jsonl" 2> "$work/job.err"
job_exit=$?
t4=$(now)
"$m" invoke --local --hub-dir "$work/hub" --where "$where" echo '{"n":1}' > "$work/fanout.jsonl" 2> "$work/fanout.err"
fan_exit=$?
set -e
t5=$(now)
job_ok=$(grep -c '"status":200' "$work/job.jsonl" || true)
fan_ok=$(grep -c '"status":200' "$work/fanout.jsonl" || true)

echo "| N | register | connect | hub RSS (idle → N connected) | per device | simulator RSS | per device | echo job over N | invoke --where over N |"
echo "|---|---|---|---|---|---|---|---|---|"
printf '| %d | %s s | %s s | %s → %s MB | %s KB | %s MB | %s KB | %s s, %d × 200, exit %d | %s s, %d × 200, exit %d |\n' \
  "$n" "$(secs "$t0" "$t1")" "$(secs "$t1" "$t2")" "$(div "$hub_idle" 1024)" "$(div "$hub_rss" 1024)" \
  "$(div "$((hub_rss - hub_idle))" "$n")" "$(div "$sim_rss" 1024)" "$(div "$sim_rss" "$n")" \
  "$(secs "$t3" "$t4")" "$job_ok" "$job_exit" "$(secs "$t4" "$t5")" "$fan_ok" "$fan_exit"
echo
echo "job summary: $(tail -n 1 "$work/job.err")"
echo "fan-out summary: $(tail -n 1 "$work/fanout.err")"

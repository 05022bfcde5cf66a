#!/usr/bin/env bash
# `make run`: the main job against the local cloud. Starts the local cloud with
# one personality per upload mechanism and per way onto the network, runs
# `imagefleet run` against the clouds.yaml it writes, prints the report and
# stops the local cloud (and every guest it booted) whatever happens.
set -eu -o pipefail

WORK=${WORK:-work}
DATA=${LOCALCLOUD_DIR:-"$WORK/localcloud"}
BIN=${BIN:-.venv/bin}
PERSONALITIES=${PERSONALITIES:-rackspace-like hp-like auro-like ovh-like}

mkdir -p "$DATA"
rm -f "$DATA/ready.json"
args=()
for p in $PERSONALITIES; do args+=(--personality "$p"); done
"$BIN/imagefleet" localcloud --data-dir "$DATA" --ready-file "$DATA/ready.json" "${args[@]}" \
  > "$DATA/localcloud.out" 2>&1 &
cloud_pid=$!
stop_cloud() {
  kill "$cloud_pid" 2>/dev/null || true
  wait "$cloud_pid" 2>/dev/null || true
}
trap stop_cloud EXIT

for _ in $(seq 1 120); do
  [ -s "$DATA/ready.json" ] && break
  kill -0 "$cloud_pid" 2>/dev/null || { cat "$DATA/localcloud.out" >&2; exit 1; }
  sleep 0.5
done
[ -s "$DATA/ready.json" ] || { echo "run: the local cloud did not start" >&2; exit 1; }
echo "run: local cloud up ($PERSONALITIES); clouds.yaml: $DATA/clouds.yaml"

OS_CLIENT_CONFIG_FILE="$DATA/clouds.yaml" "$BIN/imagefleet" run --work-dir "$WORK" "$@"

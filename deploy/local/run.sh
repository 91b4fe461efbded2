#!/usr/bin/env bash
# `make run`: the whole local system in the foreground; Ctrl-C stops everything.
# Today that is a real Kafka broker with every contract topic; each service adds
# itself here as it lands (see docs/operations.md).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

export OKR_KAFKA_PORT="${OKR_KAFKA_PORT:-19092}"
uv_run=(.tools/bin/uv run --locked)

stop_all() {
  trap - INT TERM EXIT
  echo
  echo "stopping okrstream…"
  bash "$here/kafka.sh" stop || true
  echo "stopped."
}
trap stop_all INT TERM EXIT

if [[ -n "${OKR_KAFKA_BOOTSTRAP:-}" ]]; then
  echo "using the Kafka cluster at $OKR_KAFKA_BOOTSTRAP"
else
  echo "starting Kafka (first run downloads it from Maven Central)…"
  OKR_KAFKA_BOOTSTRAP="$(bash "$here/kafka.sh" start)"
  export OKR_KAFKA_BOOTSTRAP
fi
echo "creating topics…"
"${uv_run[@]}" python -m okr_runtime.admin create-topics

cat <<INFO

okrstream is running.
  Kafka bootstrap:  $OKR_KAFKA_BOOTSTRAP
  Topics:           docs/topics.md, schemas in contracts/schemas/, AsyncAPI in docs/asyncapi.json
  Broker log:       .local/kafka-$OKR_KAFKA_PORT/
Press Ctrl-C to stop.
INFO
while true; do sleep 3600 & wait $!; done

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

pids=()
stop_all() {
  trap - INT TERM EXIT
  echo
  echo "stopping okrstream…"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
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

# Development tokens, issued once per checkout; only their hashes are in the tokens file.
state=".local"
export OKR_CHECKINS_TOKENS_FILE="$state/checkins-tokens.json"
if [[ ! -f "$OKR_CHECKINS_TOKENS_FILE" ]]; then
  mkdir -p "$state"
  umask 077
  {
    echo "cpo@example.com $("${uv_run[@]}" python -m okr_runtime.tokens "$OKR_CHECKINS_TOKENS_FILE" cpo@example.com portfolio_lead)"
    echo "auditor@example.com $("${uv_run[@]}" python -m okr_runtime.tokens "$OKR_CHECKINS_TOKENS_FILE" auditor@example.com auditor)"
  } > "$state/dev-tokens.txt"
fi

# start_service NAME PORT MODULE [VAR=VALUE…]: start a service in the background and wait until it is ready.
start_service() {
  local name="$1" port="$2" module="$3"
  shift 3
  echo "starting $name on 127.0.0.1:$port…"
  env OKR_HTTP_PORT="$port" OKR_LOG_FORMAT=text "$@" "${uv_run[@]}" python -m "$module" &
  pids+=($!)
  for _ in $(seq 1 120); do
    .venv/bin/python -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' \
      "http://127.0.0.1:$port/health/ready" 2>/dev/null && return 0
    kill -0 "${pids[-1]}" 2>/dev/null || { echo "$name exited during start-up; see the log above" >&2; exit 1; }
    sleep 0.5
  done
}

checkins_port="${OKR_CHECKINS_HTTP_PORT:-8001}"
rollup_port="${OKR_ROLLUP_HTTP_PORT:-8002}"
drift_port="${OKR_DRIFT_HTTP_PORT:-8003}"
connectors_port="${OKR_CONNECTORS_HTTP_PORT:-8004}"
notifier_port="${OKR_NOTIFIER_HTTP_PORT:-8005}"
web_port="${OKR_WEB_HTTP_PORT:-8006}"
start_service checkins "$checkins_port" okr_checkins OKR_SQLITE_PATH="${OKR_SQLITE_PATH:-$state/okrstream.sqlite}"
start_service rollup "$rollup_port" okr_rollup OKR_ROLLUP_TOKENS_FILE="$OKR_CHECKINS_TOKENS_FILE" \
  OKR_ROLLUP_SQLITE_PATH="${OKR_ROLLUP_SQLITE_PATH:-$state/rollup.sqlite}"
start_service drift "$drift_port" okr_drift OKR_DRIFT_TOKENS_FILE="$OKR_CHECKINS_TOKENS_FILE" \
  OKR_DRIFT_SQLITE_PATH="${OKR_DRIFT_SQLITE_PATH:-$state/drift.sqlite}"
start_service connectors "$connectors_port" okr_connectors OKR_CONNECTORS_TOKENS_FILE="$OKR_CHECKINS_TOKENS_FILE" \
  OKR_CONNECTORS_SQLITE_PATH="${OKR_CONNECTORS_SQLITE_PATH:-$state/connectors.sqlite}"
start_service notifier "$notifier_port" okr_notifier OKR_NOTIFIER_SQLITE_PATH="${OKR_NOTIFIER_SQLITE_PATH:-$state/notifier.sqlite}"

# The demo portfolio, as code: applying it again records nothing (docs/okrs-as-code.md).
echo "applying the demo portfolio (deploy/local/demo/portfolio.yaml)…"
OKR_TOKEN="$(awk '$1 == "cpo@example.com" {print $2}' "$state/dev-tokens.txt")" \
  "${uv_run[@]}" okr apply deploy/local/demo/portfolio.yaml --checkins "http://127.0.0.1:$checkins_port" --connectors "http://127.0.0.1:$connectors_port" \
  || echo "the demo portfolio was not applied (see above); the system runs without it" >&2

# The demo's first check-ins (deploy/local/demo/check-ins.txt), so the scorecard has numbers; fixed keys make reruns no-ops.
echo "recording the demo's first check-ins…"
trim() { local s="$1"; s="${s#"${s%%[![:space:]]*}"}"; printf '%s' "${s%"${s##*[![:space:]]}"}"; }
while IFS='|' read -r kr confidence value changed; do
  kr="$(trim "$kr")"
  [[ -z "$kr" || "$kr" == \#* ]] && continue
  OKR_TOKEN="$(awk '$1 == "cpo@example.com" {print $2}' "$state/dev-tokens.txt")" \
    "${uv_run[@]}" okr checkin demo "$kr" --confidence "$(trim "$confidence")" --value "$(trim "$value")" \
    --what-changed "$(trim "$changed")" --idempotency-key "demo-first-check-in-$kr" \
    --checkins "http://127.0.0.1:$checkins_port" >/dev/null \
    || echo "the demo check-in on $kr was not recorded (see above)" >&2
done < deploy/local/demo/check-ins.txt

start_service web "$web_port" okr_web OKR_WEB_TOKENS_FILE="$OKR_CHECKINS_TOKENS_FILE" OKR_WEB_PORTFOLIOS="${OKR_WEB_PORTFOLIOS:-demo}" \
  OKR_WEB_CHECKINS_URL="http://127.0.0.1:$checkins_port" OKR_WEB_ROLLUP_URL="http://127.0.0.1:$rollup_port" \
  OKR_WEB_DRIFT_URL="http://127.0.0.1:$drift_port"

cat <<INFO

okrstream is running.
  Kafka bootstrap:  $OKR_KAFKA_BOOTSTRAP
  Topics:           docs/topics.md, schemas in contracts/schemas/, AsyncAPI in docs/asyncapi.json
  Broker log:       .local/kafka-$OKR_KAFKA_PORT/
  Check-in API:     http://127.0.0.1:$checkins_port/docs  (OpenAPI: docs/openapi/checkins.json)
  Scores API:       http://127.0.0.1:$rollup_port/docs  (OpenAPI: docs/openapi/rollup.json; rules: docs/scoring.md)
  Alerts API:       http://127.0.0.1:$drift_port/docs  (OpenAPI: docs/openapi/drift.json; rules: docs/drift.md)
  Connectors:       http://127.0.0.1:$connectors_port/docs  (webhooks at /webhooks/{jira,linear,slack} once their secrets are set; docs/connectors.md)
  Notifier:         http://127.0.0.1:$notifier_port/health/ready  (Slack and e-mail once OKR_NOTIFIER_* are set; docs/notifier.md)
  Web pages:        http://127.0.0.1:$web_port/  (sign in with a token from .local/dev-tokens.txt; docs/web.md)
  Tokens:           .local/dev-tokens.txt  (send as Authorization: Bearer <token>)
  Demo portfolio:   http://127.0.0.1:$rollup_port/v1/portfolios/demo/scorecard  (declared in deploy/local/demo/portfolio.yaml)
Press Ctrl-C to stop.
INFO
while true; do sleep 3600 & wait $!; done

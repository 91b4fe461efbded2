#!/usr/bin/env bash
# `make run`: the whole local system in the foreground, with the demo portfolio loaded; Ctrl-C stops everything.
# Kafka, the six services, a local SMTP server and a Slack capture; the demo is deploy/local/demo/ (docs/demo.md).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

export OKR_KAFKA_PORT="${OKR_KAFKA_PORT:-19092}"
state=".local"
python=.venv/bin/python
checkins_port="${OKR_CHECKINS_HTTP_PORT:-8001}"
rollup_port="${OKR_ROLLUP_HTTP_PORT:-8002}"
drift_port="${OKR_DRIFT_HTTP_PORT:-8003}"
connectors_port="${OKR_CONNECTORS_HTTP_PORT:-8004}"
notifier_port="${OKR_NOTIFIER_HTTP_PORT:-8005}"
web_port="${OKR_WEB_HTTP_PORT:-8006}"
smtp_port="${OKR_DEMO_SMTP_PORT:-8025}"
slack_port="${OKR_DEMO_SLACK_PORT:-8007}"
url() { echo "http://127.0.0.1:$1"; }

started_at=$SECONDS
step_no=0
steps=12
step() { step_no=$((step_no + 1)); printf '[%2d/%d %3ds] %s\n' "$step_no" "$steps" "$((SECONDS - started_at))" "$*"; }

# Everything started here is stopped in reverse order on Ctrl-C (exit 130), SIGTERM (exit 0) or an error.
pids=()
sleeper=""
kafka_ours=false
stop_all() {
  local code=$1
  trap - INT TERM EXIT
  echo
  echo "stopping okrstream…"
  [[ -n "$sleeper" ]] && kill "$sleeper" 2>/dev/null
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill -TERM "${pids[i]}" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if $kafka_ours; then bash "$here/kafka.sh" stop || true; fi
  echo "stopped."
  exit "$code"
}
trap 'stop_all 130' INT
trap 'stop_all 0' TERM
trap 'stop_all $?' EXIT

step "Python environment (uv sync --locked)"
.tools/bin/uv sync --locked --quiet

if [[ -n "${OKR_KAFKA_BOOTSTRAP:-}" ]]; then
  step "Kafka: using the cluster at $OKR_KAFKA_BOOTSTRAP"
else
  step "Kafka on 127.0.0.1:$OKR_KAFKA_PORT: starting, waiting for the broker (the first run downloads it from Maven Central)"
  kafka_ours=true
  OKR_KAFKA_BOOTSTRAP="$(bash "$here/kafka.sh" start)"
  export OKR_KAFKA_BOOTSTRAP
fi
step "Kafka topics: creating the contract topics"
"$python" -m okr_runtime.admin create-topics

export OKR_EVENT_STORE="${OKR_EVENT_STORE:-sqlite}"
if [[ "$OKR_EVENT_STORE" == postgres ]]; then
  [[ -n "${OKR_POSTGRES_DSN:-}" ]] || { echo "OKR_EVENT_STORE=postgres needs OKR_POSTGRES_DSN" >&2; exit 1; }
  export OKR_POSTGRES_DSN
  store_note="PostgreSQL ($OKR_POSTGRES_DSN, every service)"
else
  store_note="SQLite files in $state/"
fi

# Development tokens and webhook secrets, made once per checkout (only the tokens' hashes are in the tokens file).
step "tokens and webhook secrets: $state/dev-tokens.txt, $state/demo/webhook-secrets.env"
"$python" deploy/local/demo/load.py prepare "$state"
export OKR_CHECKINS_TOKENS_FILE="$state/checkins-tokens.json"
set -a
# shellcheck source=/dev/null
source "$state/demo/webhook-secrets.env"
set +a
token_of() { awk -v who="$1" '$1 == who {print $2}' "$state/dev-tokens.txt"; }

# wait_ready NAME URL PID: wait until URL answers (or the process is gone).
wait_ready() {
  local name="$1" probe="$2" pid="$3"
  for _ in $(seq 1 240); do
    "$python" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' "$probe" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || { echo "$name exited during start-up; see the log above" >&2; exit 1; }
    sleep 0.5
  done
  echo "$name did not become ready in 120 s" >&2
  exit 1
}

# start_service NAME PORT MODULE [VAR=VALUE…]: start a service in the background and wait until it is ready.
start_service() {
  local name="$1" port="$2" module="$3"
  shift 3
  step "$name on $(url "$port"): starting, waiting for /health/ready"
  env OKR_HTTP_PORT="$port" OKR_LOG_FORMAT=text "$@" "$python" -m "$module" &
  pids+=($!)
  wait_ready "$name" "$(url "$port")/health/ready" "${pids[-1]}"
}

step "mail and Slack capture: SMTP on 127.0.0.1:$smtp_port, HTTPS on 127.0.0.1:$slack_port (local, nothing leaves the machine)"
"$python" deploy/local/demo/capture.py "$state" --smtp-port "$smtp_port" --slack-port "$slack_port" &
pids+=($!)
for _ in $(seq 1 40); do [[ -f "$state/slack-capture.pem" ]] && "$python" -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' "$slack_port" 2>/dev/null && break; sleep 0.25; done

start_service checkins "$checkins_port" okr_checkins OKR_SQLITE_PATH="${OKR_SQLITE_PATH:-$state/okrstream.sqlite}"
start_service rollup "$rollup_port" okr_rollup OKR_ROLLUP_TOKENS_FILE="$OKR_CHECKINS_TOKENS_FILE" \
  OKR_ROLLUP_SQLITE_PATH="${OKR_ROLLUP_SQLITE_PATH:-$state/rollup.sqlite}"
start_service drift "$drift_port" okr_drift OKR_DRIFT_TOKENS_FILE="$OKR_CHECKINS_TOKENS_FILE" \
  OKR_DRIFT_SQLITE_PATH="${OKR_DRIFT_SQLITE_PATH:-$state/drift.sqlite}"
start_service connectors "$connectors_port" okr_connectors OKR_CONNECTORS_TOKENS_FILE="$OKR_CHECKINS_TOKENS_FILE" \
  OKR_CONNECTORS_SQLITE_PATH="${OKR_CONNECTORS_SQLITE_PATH:-$state/connectors.sqlite}"

# The demo (docs/demo.md): the portfolio as code, ten weeks of check-ins, signed vendor traffic; reruns record nothing twice.
step "demo: loading Acme Commerce (deploy/local/demo/), waiting for drift's delivery signal and alerts"
"$python" deploy/local/demo/load.py load "$state" --checkins "$(url "$checkins_port")" \
  --connectors "$(url "$connectors_port")" --drift "$(url "$drift_port")"

# The notifier starts after the demo is loaded, so its first digest and readout have the alerts to report.
start_service notifier "$notifier_port" okr_notifier OKR_NOTIFIER_SQLITE_PATH="${OKR_NOTIFIER_SQLITE_PATH:-$state/notifier.sqlite}" \
  OKR_NOTIFIER_ROUTING_FILE=deploy/local/demo/routing.yaml \
  OKR_NOTIFIER_SMTP_HOST=127.0.0.1 OKR_NOTIFIER_SMTP_PORT="$smtp_port" OKR_NOTIFIER_SMTP_STARTTLS=false \
  OKR_NOTIFIER_SLACK_API_BASE="https://127.0.0.1:$slack_port/api" OKR_NOTIFIER_SLACK_ALLOWED_HOSTS=127.0.0.1 \
  OKR_NOTIFIER_SLACK_BOT_TOKEN=xoxb-local-capture SSL_CERT_FILE="$state/slack-capture.pem" \
  OKR_NOTIFIER_DRIFT_URL="$(url "$drift_port")" OKR_NOTIFIER_ROLLUP_URL="$(url "$rollup_port")" \
  OKR_NOTIFIER_API_TOKEN="$(token_of notifier@example.com)"
start_service web "$web_port" okr_web OKR_WEB_TOKENS_FILE="$OKR_CHECKINS_TOKENS_FILE" OKR_WEB_PORTFOLIOS="${OKR_WEB_PORTFOLIOS:-acme}" \
  OKR_WEB_CHECKINS_URL="$(url "$checkins_port")" OKR_WEB_ROLLUP_URL="$(url "$rollup_port")" OKR_WEB_DRIFT_URL="$(url "$drift_port")"
"$python" deploy/local/demo/load.py captures "$state" --timeout 20

cat <<INFO

okrstream is running (started in $((SECONDS - started_at)) s).
  Scorecard:        $(url "$web_port")/  (sign in with a token from $state/dev-tokens.txt, e.g. cpo@example.com's)
  Scores API:       $(url "$rollup_port")/v1/portfolios/acme/scorecard  (docs: $(url "$rollup_port")/docs; rules: docs/scoring.md)
  Alerts API:       $(url "$drift_port")/v1/portfolios/acme/alerts  (docs: $(url "$drift_port")/docs; rules: docs/drift.md)
  Check-in API:     $(url "$checkins_port")/docs  (OpenAPI: docs/openapi/checkins.json)
  Connectors:       $(url "$connectors_port")/docs  (webhooks at /webhooks/{jira,linear,slack}; secrets in $state/demo/webhook-secrets.env)
  Notifier:         $(url "$notifier_port")/health/ready  (routing: deploy/local/demo/routing.yaml)
  E-mail:           $state/mail/*.eml  (a real SMTP server on 127.0.0.1:$smtp_port)
  Slack:            $state/slack/*.json  (a local capture of chat.postMessage on https://127.0.0.1:$slack_port, not Slack)
  Tokens:           $state/dev-tokens.txt  (send as Authorization: Bearer <token>)
  Event store:      $store_note
  Kafka bootstrap:  $OKR_KAFKA_BOOTSTRAP  (topics: docs/topics.md)
  The demo:         docs/demo.md
Press Ctrl-C to stop.
INFO
while true; do
  sleep 3600 &
  sleeper=$!
  wait "$sleeper"
done

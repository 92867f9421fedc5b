#!/usr/bin/env bash
# Run a stack command in compose mode when a Docker engine answers, else locally.
# MODE=compose or MODE=local forces one; MODE=auto (default) decides.
set -euo pipefail
cd "$(dirname "$0")/.."

command="${1:?usage: deploy/stack.sh up|down|status|logs|cli ARGS}"
shift
mode="${MODE:-auto}"
if [[ "$mode" == auto ]]; then
  if docker info >/dev/null 2>&1; then mode=compose; else mode=local; fi
fi

compose() {
  if docker compose version >/dev/null 2>&1; then
    docker compose "$@"
  else
    "${COMPOSE:?no docker compose plugin and no COMPOSE binary}" "$@"
  fi
}

case "$mode:$command" in
  compose:up)
    # Missing secrets stop here: the compose file marks each one ${VAR:?...}.
    compose up --detach --wait --build --scale "trainer=${TRAINERS:-1}"
    echo "MLflow UI:  http://127.0.0.1:${MLFLOW_PORT:-5000}"
    echo "Prefect UI: http://127.0.0.1:${PREFECT_PORT:-4200}"
    ;;
  compose:down) compose down ;;
  compose:status) compose ps --all ;;
  compose:logs)
    if [[ -n "${FOLLOW:-}" ]]; then compose logs --follow ${P:+"$P"}; else compose logs --tail 40 ${P:+"$P"}; fi
    ;;
  compose:cli) compose exec -T orchestrator python -m services.orchestrator.cli "$@" ;;
  local:up|local:down|local:status) exec .venv/bin/python -m deploy.local "$command" ;;
  local:cli)
    # The variables a client of the local stack needs, written by `up`.
    set -a; . "${STACK_STATE_DIR:-.state}/stack.env"; set +a
    exec .venv/bin/python -m services.orchestrator.cli "$@"
    ;;
  local:logs) exec .venv/bin/python -m deploy.local logs ${P:+"$P"} ${FOLLOW:+--follow} ;;
  *) echo "error: unknown MODE '$mode' (auto, local or compose)" >&2; exit 2 ;;
esac

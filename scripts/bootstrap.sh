#!/usr/bin/env bash
# Fresh-machine set-up for the native stack: Debian packages (when root), the virtualenv and
# the package. Every step is skipped when already done, so a second run costs about a second.
set -euo pipefail
cd "$(dirname "$0")/.."

PG_BIN=${PRODCAT_POSTGRES__BIN_DIR:-/usr/lib/postgresql/15/bin}
VENV=${PRODCAT_VENV:-.venv}
PYTHON=${PYTHON:-python3}

say() { printf '[bootstrap] %s\n' "$*"; }

install_debian_packages() {
  local missing=()
  [ -x "$PG_BIN/postgres" ] || missing+=(postgresql-15)
  command -v prometheus >/dev/null || missing+=(prometheus)
  # The Celery executor's broker (PRODCAT_AIRFLOW__EXECUTOR=celery); small, so always there.
  command -v redis-server >/dev/null || missing+=(redis-server)
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    say "missing Debian packages: ${missing[*]}"
    say "install them with: sudo apt-get install -y --no-install-recommends ${missing[*]}"
    return 1
  fi
  say "installing Debian packages: ${missing[*]}"
  # Keep the packages' own init scripts from starting a second PostgreSQL/Prometheus/Redis.
  local policy=/usr/sbin/policy-rc.d created_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && created_policy=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  [ "$created_policy" -eq 1 ] && rm -f "$policy"
  return 0
}

install_virtualenv() {
  local stamp="$VENV/.prodcat-installed"
  local want
  want=$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return 0
  fi
  [ -x "$VENV/bin/python" ] || { say "creating virtualenv $VENV"; "$PYTHON" -m venv "$VENV"; }
  say "installing requirements into $VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip uv
  # Compiled now, once: where PYTHONDONTWRITEBYTECODE is set (CI sandboxes), every process
  # (each Airflow task, each API worker) would otherwise compile sklearn, scipy and MLflow
  # from source at every start: measured 28.7 s against 7.2 s for their imports.
  "$VENV/bin/uv" pip install -q -p "$VENV/bin/python" --compile-bytecode -r requirements.txt
  "$VENV/bin/uv" pip install -q -p "$VENV/bin/python" --no-deps -e .
  echo "$want" > "$stamp"
}

install_debian_packages
install_virtualenv
say "ready"

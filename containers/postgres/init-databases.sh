#!/bin/bash
# Runs once, on an empty data volume: one role and database per component.
set -euo pipefail
for component in prodcat:APP airflow:AIRFLOW mlflow:MLFLOW; do
  name=${component%%:*}
  var="PRODCAT_POSTGRES__${component##*:}_PASSWORD"
  psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d postgres \
    -v name="$name" -v password="${!var}" <<'SQL'
CREATE ROLE :"name" LOGIN PASSWORD :'password';
CREATE DATABASE :"name" OWNER :"name";
SQL
done

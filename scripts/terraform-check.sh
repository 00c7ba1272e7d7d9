#!/usr/bin/env bash
# terraform-check.sh: Confluent's own Terraform provider (v2.83.4,
# unmodified) against Mothership, under OpenTofu (v1.12.6).
#
#   TOFU=/path/to/tofu CONFLUENT_PROVIDER=/path/to/terraform-provider-confluent \
#     scripts/terraform-check.sh
#
# It takes the two programs as they are installed on this machine; it does
# not fetch or build them. It starts `mothership dev`, built from this
# checkout, on a fresh data dir and a free port, points OpenTofu at the
# provider with dev_overrides (no registry is asked), and runs the
# configuration in scripts/terraform/ through these steps:
#
#   apply     create everything (Dedicated cluster at 1 CKU)
#   resize    apply again with the Dedicated cluster at 2 CKU
#   plan      plan -detailed-exitcode: no changes
#   import    import the Dedicated cluster (ENV/LKC) into a fresh state,
#             then plan: no changes
#   rename    apply a new display_name for the Dedicated cluster
#   destroy   destroy everything
#
# It stops at the first step that fails, with a non-zero exit, and keeps its
# work dir (printed first): mothership.log, one TF_LOG=DEBUG log per step
# (logs/STEP.log), the tofu output (logs/STEP.out) and the states.
#
# Environment:
#   TOFU               the tofu binary (default: tofu on PATH)
#   CONFLUENT_PROVIDER the terraform-provider-confluent binary (default: on PATH)
#   TF_CHECK_STEPS     the steps to run, in order (default: all of the above)
#   TF_CHECK_CONFIG    the configuration dir (default: scripts/terraform)
#   TF_CHECK_WORK      the work dir (default: a new one under ${TMPDIR:-/tmp})
#   TF_CHECK_FAST=1    run the provider in its acceptance-test mode (TF_ACC=1):
#                      its fixed waits (90 s after a role binding, 2 min for a
#                      Kafka API key to sync, 1 min polls) become 1 s
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

TOFU=${TOFU:-$(command -v tofu || true)}
PROVIDER_BIN=${CONFLUENT_PROVIDER:-$(command -v terraform-provider-confluent || true)}
if [ -z "$TOFU" ] || [ ! -x "$TOFU" ]; then
  die "no OpenTofu: install tofu (v1.12.6) or set TOFU to its binary"
fi
if [ -z "$PROVIDER_BIN" ] || [ ! -x "$PROVIDER_BIN" ]; then
  die "no Confluent provider: set CONFLUENT_PROVIDER to a terraform-provider-confluent binary (v2.83.4)"
fi
PROVIDER_BIN=$(cd "$(dirname "$PROVIDER_BIN")" && pwd)/$(basename "$PROVIDER_BIN")
[ "$(basename "$PROVIDER_BIN")" = terraform-provider-confluent ] ||
  die "CONFLUENT_PROVIDER must be named terraform-provider-confluent (dev_overrides looks it up by name)"

WORK=${TF_CHECK_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/terraform-check.XXXXXX")}
mkdir -p "$WORK/logs"
DATA=$WORK/data
say "work dir: $WORK"

MS_PID=""
cleanup() {
  local rc=$?
  if [ -n "$MS_PID" ] && kill -0 "$MS_PID" 2>/dev/null; then
    kill "$MS_PID" 2>/dev/null || true
    wait "$MS_PID" 2>/dev/null || true
  fi
  if [ $rc -ne 0 ]; then
    say "failed; logs are in $WORK (mothership.log, logs/)"
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Mothership, built from this checkout, on a free port.
say "building mothership"
(cd "$ROOT" && go build -o "$WORK/mothership" ./cmd/mothership)
"$WORK/mothership" dev --data-dir "$DATA" --listen 127.0.0.1:0 >"$WORK/mothership.log" 2>&1 &
MS_PID=$!
URL=""
for _ in $(seq 1 600); do
  kill -0 "$MS_PID" 2>/dev/null || die "mothership dev exited: $(tail -20 "$WORK/mothership.log")"
  URL=$(sed -n 's/^  API: *\(http[^ ]*\).*/\1/p' "$WORK/mothership.log" | head -1)
  [ -n "$URL" ] && [ -s "$DATA/admin-credentials" ] && break
  sleep 0.2
done
[ -n "$URL" ] || die "mothership dev did not come up in 120s"
CREDS=$(head -1 "$DATA/admin-credentials")
say "mothership dev is up at $URL (pid $MS_PID)"

# The clusters' REST endpoints serve TLS under the installation's CA.
export SSL_CERT_FILE=$DATA/tls/ca.pem
export TF_CLI_CONFIG_FILE=$WORK/tofurc
cat >"$TF_CLI_CONFIG_FILE" <<EOF
provider_installation {
  dev_overrides {
    "confluentinc/confluent" = "$(dirname "$PROVIDER_BIN")"
  }
  direct {}
}
EOF
export TF_IN_AUTOMATION=1 TF_INPUT=0
export TF_VAR_endpoint=$URL TF_VAR_cloud_api_key=${CREDS%%:*} TF_VAR_cloud_api_secret=${CREDS#*:}
export CHECKPOINT_DISABLE=1
if [ "${TF_CHECK_FAST:-}" = 1 ]; then
  export TF_ACC=1
  say "TF_CHECK_FAST=1: the provider's waits are cut to 1s (TF_ACC=1)"
fi

CONFIG=${TF_CHECK_CONFIG:-$ROOT/scripts/terraform}
cp -RL "$CONFIG" "$WORK/tf"
TF=$WORK/tf

# tofu_step NAME DIR ARGS...: runs tofu in DIR, its debug log in logs/NAME.log.
tofu_step() {
  local name=$1 dir=$2
  shift 2
  local start=$SECONDS rc=0
  TF_LOG=DEBUG TF_LOG_PATH=$WORK/logs/$name.log "$TOFU" -chdir="$dir" "$@" -no-color >"$WORK/logs/$name.out" 2>&1 || rc=$?
  say "  tofu $* -> exit $rc ($((SECONDS - start))s)"
  return $rc
}

fail_step() {
  local name=$1
  tail -40 "$WORK/logs/$name.out" >&2
  die "step $name (full output: $WORK/logs/$name.out, debug log: $WORK/logs/$name.log)"
}

CKU=1
NAME=tf-dedicated
VARS() { echo "-var=dedicated_cku=$CKU" "-var=dedicated_name=$NAME"; }

step_apply() {
  # shellcheck disable=SC2046
  tofu_step apply "$TF" apply -auto-approve $(VARS) || fail_step apply
  [ "$("$TOFU" -chdir="$TF" output -raw lookups_agree)" = true ] || die "step apply: the data sources do not agree with the resources"
}
step_resize() {
  CKU=2
  # shellcheck disable=SC2046
  tofu_step resize "$TF" apply -auto-approve $(VARS) || fail_step resize
}
step_plan() {
  CKU=2
  local rc=0
  # shellcheck disable=SC2046
  tofu_step plan "$TF" plan -detailed-exitcode $(VARS) || rc=$?
  case $rc in
  0) ;;
  2) grep -E -m 40 '^\s*# .* (will|must) be|^Plan:' "$WORK/logs/plan.out" >&2 || true; die "step plan: the plan has changes (full output: $WORK/logs/plan.out)" ;;
  *) fail_step plan ;;
  esac
}
step_import() {
  CKU=2
  local env lkc rc=0
  env=$("$TOFU" -chdir="$TF" output -raw environment_id)
  lkc=$("$TOFU" -chdir="$TF" output -raw dedicated_id)
  # shellcheck disable=SC2046
  tofu_step import "$TF/import" import $(VARS) "-var=environment_id=$env" confluent_kafka_cluster.dedicated "$env/$lkc" || fail_step import
  # shellcheck disable=SC2046
  tofu_step import-plan "$TF/import" plan -detailed-exitcode $(VARS) "-var=environment_id=$env" || rc=$?
  case $rc in
  0) ;;
  2) grep -E -m 40 '^\s*# .* (will|must) be|^Plan:' "$WORK/logs/import-plan.out" >&2 || true; die "step import: the imported cluster plans changes (full output: $WORK/logs/import-plan.out)" ;;
  *) fail_step import-plan ;;
  esac
}
step_rename() {
  CKU=2 NAME=tf-dedicated-renamed
  # shellcheck disable=SC2046
  tofu_step rename "$TF" apply -auto-approve $(VARS) || fail_step rename
}
step_destroy() {
  # shellcheck disable=SC2046
  tofu_step destroy "$TF" destroy -auto-approve $(VARS) || fail_step destroy
}

for step in ${TF_CHECK_STEPS:-apply resize plan import rename destroy}; do
  say "step $step"
  "step_$step"
done
say "all steps passed"

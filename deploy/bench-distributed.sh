#!/usr/bin/env bash
# bench-distributed.sh runs the README's distributed deployment on this
# machine (one process per service, each with its own database on a private
# PostgreSQL server, the SASL broker, two satellites with the simulated
# driver) and drives it with `mothership bench --url`. It then prints each
# process's CPU seconds over the whole run and its peak RSS.
#
#   deploy/bench-distributed.sh [bench flags...]
#   deploy/bench-distributed.sh --clusters 10000 --rate 1000 --duration 60s -o json
#
# Everything lives under $WORK (default a new temporary directory), which
# is removed at the end unless KEEP=1. Needs PostgreSQL's server binaries
# (apt-get install postgresql); as root, the server runs as `postgres`.
set -euo pipefail

cd "$(dirname "$0")/.."
WORK=${WORK:-$(mktemp -d /tmp/mothership-dist.XXXXXX)}
mkdir -p "$WORK" && chmod 755 "$WORK"
BIN=$WORK/mothership
go build -o "$BIN" ./cmd/mothership

pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$pgbin/initdb" ] || { echo "PostgreSQL's server binaries are missing: apt-get install postgresql" >&2; exit 1; }
asuser=()
[ "$(id -u)" = 0 ] && asuser=(runuser -u postgres --)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PGPORT=$(free_port)
mkdir -p "$WORK/pg"
[ "$(id -u)" = 0 ] && chown postgres "$WORK/pg"
echo pg-admin-secret > "$WORK/pgpw" && chmod 644 "$WORK/pgpw"
"${asuser[@]}" "$pgbin/initdb" -D "$WORK/pg/data" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
  --pwfile="$WORK/pgpw" -E UTF8 >/dev/null
# The README's pg_hba.conf lines, first.
sed -i -e '1i host    replication  +mothership_services  all  reject' \
  -e '1i local   replication  +mothership_services       reject' "$WORK/pg/data/pg_hba.conf"
"${asuser[@]}" "$pgbin/pg_ctl" -D "$WORK/pg/data" -l "$WORK/pg/log" -w start \
  -o "-p $PGPORT -k $WORK/pg -c listen_addresses=127.0.0.1 -c wal_level=logical -c max_slot_wal_keep_size=10GB -c max_connections=300 -c max_replication_slots=16 -c max_wal_senders=16" >/dev/null

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  "${asuser[@]}" "$pgbin/pg_ctl" -D "$WORK/pg/data" -m fast -w stop >/dev/null 2>&1 || true
  [ "${KEEP:-}" = 1 ] || rm -rf "$WORK"
}
trap cleanup EXIT

cd "$WORK"
mkdir -p ms && echo broker-admin-secret > ms/kafka-admin
KPORT=$(free_port)
"$BIN" broker --data-dir ms/broker --listen 127.0.0.1:$KPORT --admin-user admin --admin-password-file ms/kafka-admin > ms/broker.log 2>&1 &
pids+=($!); declare -A pid_of=([broker]=$!)
for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$KPORT) 2>/dev/null && break; sleep 0.1; done

"$BIN" setup --dir ms/deploy --db-admin "postgres://postgres:pg-admin-secret@127.0.0.1:$PGPORT/postgres" \
  --kafka 127.0.0.1:$KPORT --kafka-admin-user admin --kafka-admin-password-file ms/kafka-admin > ms/setup.log

# Quota and API rate sized for the bench (one organization, one key), and
# the cloud simulated quickly as in the bench's own control plane: it
# times the control plane, not the cloud.
for s in network sync capacity pkc quota kafka iam audit billing fleet gateway; do
  env $(cat ms/deploy/env/$s.env) "$BIN" serve $s --org-max-clusters 1000000 --org-max-cku 10000000 \
    --api-rate 1000000 --api-burst 1000000 --cloud-operation-time 10ms > ms/$s.log 2>&1 &
  pids+=($!); pid_of[$s]=$!
  listen=$(grep '^MOTHERSHIP_LISTEN=' ms/deploy/env/$s.env | cut -d= -f2)
  until curl -fs "http://$listen/readyz" >/dev/null; do
    kill -0 "${pid_of[$s]}" 2>/dev/null || { echo "$s exited:" >&2; tail -5 ms/$s.log >&2; exit 1; }
    sleep 0.1
  done
done
for site in aws-us-west-2 gcp-europe-west1; do
  env $(cat ms/deploy/env/satellite-$site.env) "$BIN" satellite --driver simulated > ms/satellite-$site.log 2>&1 &
  pids+=($!); pid_of[satellite-$site]=$!
done

api=$(grep '^MOTHERSHIP_LISTEN=' ms/deploy/env/gateway.env | cut -d= -f2)
# The admin's key signs in once iam's first events have gone round.
for i in $(seq 600); do
  curl -fs -u "$(cat ms/deploy/admin-credentials)" "http://$api/org/v2/environments" >/dev/null && break
  [ "$i" = 600 ] && { echo "the admin's key never signed in at $api" >&2; exit 1; }
  sleep 0.1
done
"$BIN" bench --url "http://$api" --credentials-file ms/deploy/admin-credentials \
  --kafka 127.0.0.1:$KPORT --kafka-user admin --kafka-password-file ms/kafka-admin "$@"

# Each process's CPU over the whole run (user + system) and peak RSS.
tck=$(getconf CLK_TCK)
printf '%-28s %10s %12s\n' process cpu_s peak_rss_mib
total=0
for name in "${!pid_of[@]}"; do
  p=${pid_of[$name]}
  [ -r /proc/$p/stat ] || { printf '%-28s exited\n' "$name"; continue; }
  read -r ut st < <(awk '{print $14, $15}' /proc/$p/stat)
  hwm=$(awk '/VmHWM/ {print $2}' /proc/$p/status)
  total=$(( total + ut + st ))
  printf '%-28s %10.1f %12.0f\n' "$name" "$(echo "($ut + $st) / $tck" | bc -l)" "$(echo "$hwm / 1024" | bc -l)" >> "$WORK/procs"
done
sort "$WORK/procs"
# PostgreSQL: the postmaster with the backends it reaped, and the live ones.
pm=$(head -1 "$WORK/pg/data/postmaster.pid")
pgticks=$(awk '{print $14 + $15 + $16 + $17}' /proc/$pm/stat)
for p in $(pgrep -P "$pm"); do
  [ -r /proc/$p/stat ] && pgticks=$(( pgticks + $(awk '{print $14 + $15}' /proc/$p/stat) ))
done
printf '%-28s %10.1f\n' "postgres (all processes)" "$(echo "$pgticks / $tck" | bc -l)"
printf '%-28s %10.1f\n' "all" "$(echo "($total + $pgticks) / $tck" | bc -l)"

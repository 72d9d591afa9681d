#!/usr/bin/env bash
# swarm-up.sh MANAGER [OTHER...] - a Swarm of its own on the named multi-node engines.
#
# The first node inits the Swarm (advertising its namespace address), the others join it as
# managers, so a three-node Swarm survives the loss of its leader. Only the named nodes are
# touched: `multi-node.sh swarm` joins every running node, and nodes 1-6 belong to other
# tests (standalone engines, node loss). Idempotent: an active node is left as it is, a node
# stuck in another state leaves first. Prints the manager's socket on stdout.
#
#   bash scripts/swarm-up.sh 7 8 9     # -> unix:///run/sdo-node7/docker.sock
# Env: MN_NET (10.213.0), SWARM_POOL (10.214.0.0/16): the overlay address pool, apart from
# the hosts' own networks.
set -euo pipefail

MN_NET=${MN_NET:-10.213.0}
SWARM_POOL=${SWARM_POOL:-10.214.0.0/16}

[[ $# -ge 1 ]] || { echo "usage: $0 MANAGER [OTHER...] (node indexes 1..9)" >&2; exit 2; }
for i in "$@"; do
  [[ $i =~ ^[1-9]$ ]] || { echo "swarm-up: node index must be 1..9, got '$i'" >&2; exit 2; }
done

sock_of() { echo "unix:///run/sdo-node$1/docker.sock"; }
ip_of() { echo "$MN_NET.$((10 + $1))"; }
dk() { local i=$1; shift; docker -H "$(sock_of "$i")" "$@"; }
state_of() { dk "$1" info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null || echo down; }
log() { printf '[swarm-up %s] %s\n' "$(date +%T)" "$*" >&2; }

mgr=$1
shift
[[ $(state_of "$mgr") != down ]] || { log "node$mgr's engine does not answer (multi-node.sh up 9 first)"; exit 1; }

# A manager that is active but part of another Swarm (e.g. one `multi-node.sh swarm` made on
# node1) is not ours: it must be the leader of its own.
if [[ $(state_of "$mgr") == active ]] &&
  ! dk "$mgr" info --format '{{range .Swarm.RemoteManagers}}{{.Addr}} {{end}}' | grep -q "$(ip_of "$mgr"):2377"; then
  log "node$mgr is in a Swarm it does not manage; leaving it"
  dk "$mgr" swarm leave --force >/dev/null
fi
if [[ $(state_of "$mgr") != active ]]; then
  [[ $(state_of "$mgr") == inactive ]] || dk "$mgr" swarm leave --force >/dev/null 2>&1 || true
  dk "$mgr" swarm init --advertise-addr "$(ip_of "$mgr")" --listen-addr "$(ip_of "$mgr"):2377" \
    --default-addr-pool "$SWARM_POOL" --default-addr-pool-mask-length 24 >/dev/null
  log "node$mgr: swarm init"
fi
cluster=$(dk "$mgr" info --format '{{.Swarm.Cluster.ID}}')
token=$(dk "$mgr" swarm join-token -q manager)

for i in "$@"; do
  st=$(state_of "$i")
  if [[ $st == down ]]; then
    log "node$i's engine does not answer; skipped"
    continue
  fi
  if [[ $st == active ]]; then
    [[ $(dk "$i" info --format '{{.Swarm.Cluster.ID}}' 2>/dev/null) == "$cluster" ]] && continue
    log "node$i is in another Swarm; leaving it"
  fi
  [[ $st == inactive ]] || dk "$i" swarm leave --force >/dev/null 2>&1 || true
  dk "$i" swarm join --token "$token" --advertise-addr "$(ip_of "$i")" \
    --listen-addr "$(ip_of "$i"):2377" "$(ip_of "$mgr"):2377" >/dev/null
  log "node$i: joined as a manager"
done

# A member is `Ready` only once its agent registered with the leader's dispatcher, a moment
# after its join (longer on a loaded machine); the suites start right after this script and
# place tasks on every member, so wait for each named node (bounded, 60 s) and fail naming
# the ones that are not ready rather than leave a suite to find out.
members=("$mgr" "$@")
not_ready() {
  local listed i
  listed=$(dk "$mgr" node ls --format '{{.Hostname}} {{.Status}} {{.Availability}}' 2>/dev/null || true)
  for i in "${members[@]}"; do
    grep -qx "sdo-node$i Ready Active" <<<"$listed" || printf 'node%s ' "$i"
  done
}
for _ in $(seq 1 120); do
  [[ -z $(not_ready) ]] && break
  sleep 0.5
done
dk "$mgr" node ls >&2
waiting=$(not_ready)
[[ -z $waiting ]] || { log "not ready after 60 s: $waiting"; exit 1; }
sock_of "$mgr"

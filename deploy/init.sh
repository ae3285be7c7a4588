#!/usr/bin/env bash
# Makes what deploy/compose.yaml mounts, with kvctl certs (no openssl):
#
#   certs/ca.crt, certs/ca.key      the office CA (keep ca.key offline afterwards)
#   certs/kvN/{node.crt,node.key,ca.crt}  each node's own files, owned by the
#                                   container user (10001), mounted read-only
#   certs/ops.crt, certs/ops.key    a client certificate for kvctl and applications
#   certs/shelf.env                 SHELF_GOSSIP_KEY, read by every node (env_file)
#
#   deploy/init.sh                  # into deploy/certs
#   SHELF_CERTS=/etc/shelf/compose SHELF_CERT_HOSTS=shelf.office,10.0.0.5 deploy/init.sh
#
# SHELF_CERT_HOSTS adds names and addresses to every node certificate: the
# Docker host's name and address when clients elsewhere reach the
# published ports. SHELF_SUBNET_PREFIX must match the compose file's
# (default 172.29.70). Nothing existing is overwritten: remove the
# directory to start again.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
certs="${SHELF_CERTS:-$here/certs}"
prefix="${SHELF_SUBNET_PREFIX:-172.29.70}"
uid="${SHELF_UID:-10001}"

kvctl="${KVCTL:-$(command -v kvctl || true)}"
if [ -z "$kvctl" ]; then
  export PATH="$PATH:/usr/local/go/bin"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  (cd "$here/.." && go build -o "$tmp/kvctl" ./cmd/kvctl)
  kvctl="$tmp/kvctl"
fi

if [ -e "$certs/ca.crt" ]; then
  echo "init: $certs/ca.crt exists; remove $certs to make new certificates" >&2
  exit 1
fi
mkdir -p "$certs"
"$kvctl" certs init --dir "$certs"
i=11
for n in kv1 kv2 kv3; do
  hosts="$prefix.$i,$n,localhost,127.0.0.1${SHELF_CERT_HOSTS:+,$SHELF_CERT_HOSTS}"
  mkdir -p "$certs/$n"
  "$kvctl" certs issue --ca "$certs" "$n" --node --hosts "$hosts" --out "$certs/$n"
  mv "$certs/$n/$n.crt" "$certs/$n/node.crt"
  mv "$certs/$n/$n.key" "$certs/$n/node.key"
  cp "$certs/ca.crt" "$certs/$n/ca.crt"
  i=$((i + 1))
done
"$kvctl" certs issue --ca "$certs" ops --client
umask 077
printf '# Read by every node (compose env_file).\nSHELF_GOSSIP_KEY=%s\n' "$("$kvctl" certs gossip-key)" >"$certs/shelf.env"

# The nodes run as $uid: their own key must be readable by it.
if [ "$(id -u)" = 0 ]; then
  chown -R "$uid:$uid" "$certs/kv1" "$certs/kv2" "$certs/kv3"
else
  echo "init: not root: run  sudo chown -R $uid:$uid $certs/kv1 $certs/kv2 $certs/kv3  before docker compose up" >&2
fi
echo "init: certificates and gossip key in $certs" >&2

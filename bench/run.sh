#!/usr/bin/env bash
# Side-by-side write benchmark: 3 etcd members (Debian's etcd-server) and
# 3 kvnodes built from this repository, on loopback, fsync on, the same
# load on both, alternating. Arguments go to the sidebyside program, e.g.
#
#   bench/run.sh                      # writers 1,16,64; 4000 writes; 3 reps
#   bench/run.sh -strace -reps 1      # also fdatasyncs per write per node
#   bench/run.sh -h                   # all flags
#   bench/run.sh -serve               # only 3 kvnodes, for cmd/shelfbench (prints -s and -pids)
#
# Installs etcd-server and strace with apt-get when missing (needs root).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
export PATH="/usr/local/go/bin:$PATH"

need=()
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
command -v strace >/dev/null 2>&1 || need+=(strace)
if ((${#need[@]})); then
	echo "run.sh: installing ${need[*]}" >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y "${need[@]}" >&2 ||
		{ apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y "${need[@]}" >&2; }
	# Debian's package may start a system etcd on the default ports; the
	# benchmark starts its own members on other ports and does not use it.
fi

bin="$(mktemp -d "${TMPDIR:-/tmp}/shelf-bench-bin.XXXXXX")"
trap 'rm -rf "$bin"' EXIT
(cd "$root" && go build -o "$bin/kvnode" ./cmd/kvnode)
(cd "$here" && go build -o "$bin/sidebyside" ./sidebyside)
"$bin/sidebyside" -etcd "$(command -v etcd)" -kvnode "$bin/kvnode" "$@"

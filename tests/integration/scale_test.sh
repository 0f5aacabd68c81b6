#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# scale_test.sh BROKERD SCALE_TEST WORKDIR [N]: a broker allowed N+ sessions (and the descriptors
# for them) holds N idle authenticated sessions within the memory target.
set -u
brokerd=$1 scale=$2 work=$3 n=${4:-10000}
rm -rf "$work"
mkdir -p "$work"
work=$(cd "$work" && pwd)
# One uid opens them all, and they match no principal: lift the per-user cap and the short timeout.
printf '[service]\nendpoint = %s/run/b.sock\nstate_dir = %s/state\nbackend = sim\nmax_sessions = %d\nmax_sessions_per_user = %d\nidle_timeout_ms = 600000\nunmatched_timeout_ms = 600000\n' \
	"$work" "$work" $((n + 16)) $((n + 16)) >"$work/b.conf"
ulimit -n $((n + 256)) || { echo "FAIL cannot raise the descriptor limit to $((n + 256))"; exit 1; }
"$brokerd" --config "$work/b.conf" >"$work/broker.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null' EXIT
for _ in $(seq 1 100); do [ -S "$work/run/b.sock" ] && break; sleep 0.05; done
"$scale" "$work/run/b.sock" "$work/state/server.pub" "$pid" "$n"

#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# hostile.sh BROKERD HOSTILE_TEST WORKDIR: the hostile suite. Starts the real broker (as root) with
# the limits hostile-test expects, then runs each attack from processes under real, unprivileged
# uids while a root witness session measures the broker. Ends with "N passed, M failed".
set -u
brokerd=$1 hostile=$2 work=$3
if [ "$(id -u)" -ne 0 ]; then
	echo "FAIL the hostile suite needs root: it starts attackers under uids 1001 and 1003"
	echo "0 passed, 1 failed"
	exit 1
fi
rm -rf "$work"
mkdir -p "$work"
work=$(cd "$work" && pwd)
# The attackers are other users: they must reach the socket (group nogroup) and its directory.
chmod 755 "$work"
cat >"$work/b.conf" <<CONF
; written by hostile.sh: the limits tests/integration/hostile_test.c assumes
[service]
endpoint = $work/run/b.sock
state_dir = $work/state
socket_group = nogroup
max_sessions = 32
max_sessions_per_user = 8
idle_timeout_ms = 30000
unmatched_timeout_ms = 1000
output_max_kib = 256
output_stall_ms = 2000

[principal root]
uid = 0
ops = stash fetch admin listen accept connect query apply
listen = 127.0.0.1/32:*
connect = 127.0.0.1/32:*
max_sessions = 64

[principal app]
uid = 1001
ops = stash fetch connect
connect = 127.0.0.2/32:*, [::]/0:*
bind = 127.0.0.1/32:40000-40100
CONF
"$brokerd" --config "$work/b.conf" >"$work/broker.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null' EXIT
for _ in $(seq 1 100); do [ -S "$work/run/b.sock" ] && break; sleep 0.05; done
"$hostile" "$work/run/b.sock" "$work/state/server.pub" ${WFPB_HOSTILE_CASES:-linger_fd linger_fd_with_ping output_flood \
	identity_flood unmatched_timeout mapped_ipv4 bind_policy}
rc=$?
if ! kill -0 "$pid" 2>/dev/null; then
	echo "FAIL the broker did not survive the hostile suite"
	rc=1
fi
[ $rc -eq 0 ] || sed 's/^/    broker: /' "$work/broker.log" | tail -40
exit $rc

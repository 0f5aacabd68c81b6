#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# hostile.sh BROKERD HOSTILE_TEST WORKDIR WFPBCTL: the hostile suite. Checks that the broker refuses a
# state directory or key another user could have planted, then starts the real broker (as root)
# with the limits hostile-test expects and runs each attack from processes under real,
# unprivileged uids while a root witness session measures the broker. WFPB_HOSTILE_CASES picks
# cases. Ends with "N passed, M failed".
set -u
brokerd=$1 hostile=$2 work=$3 wfpbctl=$4
. "$(dirname "$0")/../check.sh"
if [ "$(id -u)" -ne 0 ]; then
	ko "the hostile suite needs root: it starts attackers under uids 1001, 1003 and 1005"
	summary
	exit 1
fi
rm -rf "$work"
mkdir -p "$work"
work=$(cd "$work" && pwd)
pid=
trap '[ -n "$pid" ] && kill -CONT $pid 2>/dev/null; [ -n "$pid" ] && kill $pid 2>/dev/null; wait 2>/dev/null' EXIT
# The attackers are other users: they must reach the socket (group nogroup) and its directory.
chmod 755 "$work"
write_conf() {
	cat >"$work/b.conf" <<CONF
; written by hostile.sh: the limits tests/integration/hostile_test.c assumes
[service]
endpoint = $work/run/b.sock
state_dir = $1
backend = sim
socket_group = nogroup
max_sessions = ${2:-32}
max_sessions_per_user = ${3:-8}
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
bind = 127.0.0.1/32:20000-20100

[principal grp]
gid = 1500
ops = stash
CONF
}

# 12. A state directory or private key someone else owns, or others may write, is not ours.
refuses() { # refuses WORDS: the broker exits non-zero at start and its message says WORDS
	local out
	out=$(timeout 10 "$brokerd" --config "$work/b.conf" 2>&1) && return 1
	echo "$out" | grep -q "$1" || { echo "    got: $out"; return 1; }
}
mkdir "$work/planted"
chown 1003 "$work/planted"
write_conf "$work/planted"
check "a state directory owned by another user: refused at start" refuses "planted.*must be owned by"
chown 0 "$work/planted"
chmod 777 "$work/planted"
check "a state directory others may write: refused at start" refuses "planted.*must be owned by"
chmod 755 "$work/planted"
"$brokerd" keygen --config "$work/b.conf" >/dev/null 2>&1
chown 1003 "$work/planted/server.key"
check "a private key owned by another user: refused at start" refuses "server.key"
rm -rf "$work/planted"

write_conf "$work/state"
"$brokerd" --config "$work/b.conf" >"$work/broker.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do [ -S "$work/run/b.sock" ] && break; sleep 0.05; done
export WFPB_HOSTILE_AUDIT_LOG=$work/state/audit.log WFPB_HOSTILE_BROKER_LOG=$work/broker.log
# shellcheck disable=SC2086
if "$hostile" "$work/run/b.sock" "$work/state/server.pub" "$pid" ${WFPB_HOSTILE_CASES:-linger_fd \
	linger_fd_with_ping output_flood identity_flood unmatched_timeout mapped_ipv4 bind_policy \
	groups_at_connect foreign_records audit_flood denial_flood} >"$work/hostile.out" 2>&1; then
	ok "hostile-test: every attack held"
else
	ko "hostile-test: an attack got through"
fi
sed 's/^/    /' "$work/hostile.out"
check "the broker survived the hostile suite" kill -0 "$pid"
[ "$fail" -eq 0 ] || sed 's/^/    broker: /' "$work/broker.log" | tail -40
kill "$pid"
wait "$pid"
pid=
# 5. The chain, summary records included, still verifies, and the summary counted the flood.
check "the audit log of the hostile run verifies" "$wfpbctl" audit verify "$work/state/audit.log" \
	--pubkey "$work/state/audit.pub"
if [ -z "${WFPB_HOSTILE_CASES:-}" ] || [[ " $WFPB_HOSTILE_CASES " == *" audit_flood "* ]]; then
	check "a summary record counts the Pings of sessions without a principal" eval \
		'"$wfpbctl" audit tail -n 100000 "$work/state/audit.log" | grep -q "AUDIT_SUMMARY .*their requests without effect: [1-9]"'
fi

# 4. Descriptor exhaustion: a broker held to 64 descriptors (soft and hard), with session caps
# that do not stop the attacker first.
if [ -z "${WFPB_HOSTILE_CASES:-}" ] || [[ " $WFPB_HOSTILE_CASES " == *" fd_exhaustion "* ]]; then
	write_conf "$work/state" 1000 1000
	(ulimit -n 64 && exec "$brokerd" --config "$work/b.conf") >"$work/broker-fd.log" 2>&1 &
	pid=$!
	for _ in $(seq 1 100); do [ -S "$work/run/b.sock" ] && break; sleep 0.05; done
	log0=$(stat -c %s "$work/broker-fd.log")
	if "$hostile" "$work/run/b.sock" "$work/state/server.pub" "$pid" fd_exhaustion >"$work/hostile-fd.out" 2>&1; then
		ok "hostile-test fd_exhaustion: no spin, witness served, service back after"
	else
		ko "hostile-test fd_exhaustion"
	fi
	sed 's/^/    /' "$work/hostile-fd.out"
	grown=$(( $(stat -c %s "$work/broker-fd.log") - log0 ))
	check "the broker's log grew $grown bytes during the attack (bound 4096)" test "$grown" -le 4096
	check "the broker survived descriptor exhaustion" kill -0 "$pid"
	[ "$fail" -eq 0 ] || sed 's/^/    broker: /' "$work/broker-fd.log" | tail -20
fi
summary

#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# no_systemd.sh BROKERD WFPBCTL WORKDIR
#
# The broker started as root by an init that is not systemd (`wfpbrokerd --user`, the command
# docs/OPERATIONS.md gives): it makes its runtime and state directories and gives them to its
# user, then runs as that user with CAP_NET_ADMIN and CAP_NET_BIND_SERVICE alone (effective,
# permitted and bounding), no supplementary groups and no_new_privs, as the packaged unit has it;
# clients reach it. And what it refuses: --user when not root, uid 0, and a directory of another
# user's (never given away).
set -u
brokerd=$1 wfpbctl=$2 work=$3
. "$(dirname "$0")/../check.sh"
[ "$(id -u)" = 0 ] || { echo "FAIL needs root: it starts the broker as root"; echo "0 passed, 1 failed"; exit 1; }
rm -rf "$work"
mkdir -p "$work"
work=$(cd "$work" && pwd)
chmod 755 "$work"
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; true; }
trap cleanup EXIT
uid=1011
cat >"$work/wfpbroker.conf" <<CONF
[service]
endpoint = $work/run/wfpbroker/wfpbroker.sock
state_dir = $work/lib/wfpbroker
backend = netfilter
CONF
mkdir -p "$work/run" "$work/lib"
"$brokerd" --config "$work/wfpbroker.conf" --user "$uid:$uid" >"$work/broker.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do [ -S "$work/run/wfpbroker/wfpbroker.sock" ] && break; sleep 0.05; done
check "started as root with --user, it made its runtime and state directories for uid $uid" eval \
	"test \"\$(stat -c %u:%g '$work/run/wfpbroker' '$work/lib/wfpbroker' | sort -u)\" = '$uid:$uid'"
check "  and runs as uid $uid, gid $uid, no supplementary group" eval \
	"awk '/^Uid:/ { u = \$2 \$3 \$4 \$5 } /^Gid:/ { g = \$2 \$3 \$4 \$5 } /^Groups:/ { n = NF }
	     END { exit !(u == \"$uid$uid$uid$uid\" && g == \"$uid$uid$uid$uid\" && n == 1) }' /proc/$pid/status"
check "  with CAP_NET_ADMIN and CAP_NET_BIND_SERVICE alone (effective, permitted, bounding), none ambient, no_new_privs" eval \
	"awk '/^CapEff:/ { e = \$2 } /^CapPrm:/ { p = \$2 } /^CapBnd:/ { b = \$2 } /^CapAmb:/ { a = \$2 } /^NoNewPrivs:/ { n = \$2 }
	     END { exit !(e == \"0000000000001400\" && p == e && b == e && a == \"0000000000000000\" && n == 1) }' /proc/$pid/status"
check "  its keys are its user's" eval "test \"\$(stat -c %u '$work/lib/wfpbroker/server.key')\" = $uid"
check "  and a client reaches it" eval "'$wfpbctl' --endpoint '$work/run/wfpbroker/wfpbroker.sock' \
	--server-key '$work/lib/wfpbroker/server.pub' ping >/dev/null"
kill "$pid"
wait "$pid" 2>/dev/null
pid=

# What it refuses, each exiting 78 with the reason and giving nothing away.
"$brokerd" --config "$work/wfpbroker.conf" --user 0 >"$work/r1.log" 2>&1
rc=$?
check "--user 0 is refused: the broker does not run as root (exit $rc, 78 wanted)" eval \
	"test $rc = 78 && grep -q 'does not run as root' '$work/r1.log'"
setpriv --reuid=1012 --regid=1012 --clear-groups "$brokerd" --config "$work/wfpbroker.conf" --user "$uid" >"$work/r2.log" 2>&1
rc=$?
check "--user when not root is refused (exit $rc, 78 wanted)" eval "test $rc = 78 && grep -q 'only root' '$work/r2.log'"
mkdir -p "$work/other"
chown 1013:1013 "$work/other"
sed "s|state_dir = .*|state_dir = $work/other|" "$work/wfpbroker.conf" >"$work/other.conf"
"$brokerd" --config "$work/other.conf" --user "$uid" >"$work/r3.log" 2>&1
rc=$?
check "a state directory of another user's is refused, not given away (exit $rc, owner still 1013)" eval \
	"test $rc = 78 && grep -q 'is not a directory of uid $uid' '$work/r3.log' && test \"\$(stat -c %u '$work/other')\" = 1013"
summary

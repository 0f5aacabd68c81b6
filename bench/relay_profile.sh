#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# relay_profile.sh BROKERD RELAY CONNLOAD WFPBCTL WORKDIR [SECONDS]: where a relayed connection's
# cost goes (docs/PERFORMANCE.md, "Per connection"), in one run. The same load as conn_rate.sh
# (connect -> 6 B -> echo -> close, 32 in flight) through:
#   relay     wfpb-relay + wfpbrokerd (sim backend, audit log on and durable), one Relay each
#   pair      the same with --pair: an Accept then a Connect each
#   direct    wfpb-relay --direct, no broker (root only)
# and for each, per relayed connection: CPU time of the relay and of the broker (from
# /proc/PID/stat), the system calls each makes and how many of them are waits (a second,
# shorter run under strace -c, which slows it but not what it counts), the audit records and
# commits, and the bytes through the encrypted channel (what the crypto covers; from the
# relay's side, strace -e of its reads and writes on the broker's socket).
set -u
brokerd=$1 relay=$2 connload=$3 wfpbctl=$4 work=$5 secs=${6:-3}
rm -rf "$work"
mkdir -p "$work"
work=$(cd "$work" && pwd)
pids=
cleanup() { for p in $pids; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; }
trap cleanup EXIT
command -v strace >/dev/null || { echo "relay_profile: strace is needed (apt install strace)"; exit 1; }
hz=$(getconf CLK_TCK)

"$connload" echo "$work/origin.port" & pids="$pids $!"
for _ in $(seq 1 100); do [ -s "$work/origin.port" ] && break; sleep 0.05; done
origin=$(cat "$work/origin.port")

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
status_of() { "$wfpbctl" --endpoint "$work/$1/b.sock" --server-key "$work/$1/state/server.pub" status |
	sed -n "s/^$2 \\([0-9]*\\).*/\\1/p"; }

# start KIND [RELAY OPTIONS]: a broker for KIND (none for direct) and the relay; sets bpid, rpid, port.
start() {
	local kind=$1 d=$work/$1
	shift
	mkdir -p "$d/state"
	bpid=
	if [ "$kind" != direct ]; then
		cat >"$d/b.conf" <<CONF
[service]
endpoint = $d/b.sock
state_dir = $d/state
backend = sim
max_sessions = 64

[principal relay]
uid = $(id -u)
ops = listen accept connect admin
listen = 127.0.0.1/32:*
connect = 127.0.0.1/32:*
CONF
		"$brokerd" --config "$d/b.conf" 2>"$d/broker.log" & bpid=$!
		pids="$pids $bpid"
		for _ in $(seq 1 100); do [ -S "$d/b.sock" ] && break; sleep 0.05; done
		"$relay" --quiet "$@" --endpoint "$d/b.sock" --server-key "$d/state/server.pub" \
			--listen 127.0.0.1:0 --to "127.0.0.1:$origin" >"$d/relay.log" 2>&1 & rpid=$!
	else
		"$relay" --direct --quiet --listen 127.0.0.1:0 --to "127.0.0.1:$origin" >"$d/relay.log" 2>&1 & rpid=$!
	fi
	pids="$pids $rpid"
	port=
	for _ in $(seq 1 100); do
		port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$d/relay.log" | head -n 1)
		[ -n "$port" ] && break
		sleep 0.05
	done
	[ -n "$port" ] || { echo "relay_profile: the $kind relay did not start"; cat "$d/relay.log"; exit 1; }
}

# syscalls FILE N: "calls/conn waits/conn" from strace -c output FILE over N connections.
syscalls() {
	awk -v n="$2" '$NF ~ /^[a-z_0-9]+$/ && $4 ~ /^[0-9]+$/ {
		calls += $4; if ($NF ~ /^(epoll_wait|epoll_pwait|poll|ppoll|select|futex)$/) waits += $4 }
		END { if (n > 0) printf "%.1f %.1f", calls / n, waits / n; else print "- -" }' "$1"
}

declare -A row
profile() { # profile KIND [RELAY OPTIONS]
	local kind=$1 d=$work/$1 out n b0 r0 seq0 com0 seq1 com1 sn sb sr bytes
	start "$@"
	sleep 0.3
	b0=0 r0=$(cpu_ticks "$rpid")
	[ -n "$bpid" ] && b0=$(cpu_ticks "$bpid") seq0=$(status_of "$kind" audit_durable_seq) com0=$(status_of "$kind" audit_commits)
	out=$("$connload" run "$port" 32 "$secs")
	n=$(echo "$out" | sed -n 's/^conns \([0-9]*\) .*/\1/p')
	row[$kind,rate]=$(echo "$out" | sed -n 's/.* rate \([0-9]*\)\/s.*/\1/p')
	row[$kind,relay_cpu]=$(awk -v a="$r0" -v b="$(cpu_ticks "$rpid")" -v n="$n" -v hz="$hz" 'BEGIN { printf "%.1f", (b - a) * 1e6 / hz / n }')
	row[$kind,broker_cpu]=- row[$kind,records]=- row[$kind,commits]=-
	if [ -n "$bpid" ]; then
		row[$kind,broker_cpu]=$(awk -v a="$b0" -v b="$(cpu_ticks "$bpid")" -v n="$n" -v hz="$hz" 'BEGIN { printf "%.1f", (b - a) * 1e6 / hz / n }')
		seq1=$(status_of "$kind" audit_durable_seq) com1=$(status_of "$kind" audit_commits)
		row[$kind,records]=$(awk -v a="$seq0" -v b="$seq1" -v n="$n" 'BEGIN { printf "%.2f", (b - a) / n }')
		row[$kind,commits]=$(awk -v a="$com0" -v b="$com1" -v n="$n" 'BEGIN { printf "%.3f", (b - a) / n }')
	fi
	# The same load, counted by strace: system calls and waits per connection.
	timeout 30 strace -c -f -o "$d/relay.strace" -p "$rpid" >/dev/null 2>&1 &
	sr=$!
	sb=
	if [ -n "$bpid" ]; then
		timeout 30 strace -c -f -o "$d/broker.strace" -p "$bpid" >/dev/null 2>&1 &
		sb=$!
	fi
	sleep 0.5
	out=$("$connload" run "$port" 32 "$secs")
	sn=$(echo "$out" | sed -n 's/^conns \([0-9]*\) .*/\1/p')
	kill -INT $sr $sb 2>/dev/null
	wait $sr $sb 2>/dev/null
	row[$kind,relay_sys]=$(syscalls "$d/relay.strace" "$sn")
	row[$kind,broker_sys]="- -"
	[ -n "$sb" ] && row[$kind,broker_sys]=$(syscalls "$d/broker.strace" "$sn")
	# The bytes the relay and the broker exchange, per connection (both directions).
	row[$kind,bytes]=-
	if [ -n "$bpid" ]; then
		timeout 30 strace -f -yy -e trace=sendto,recvfrom,recvmsg,sendmsg -o "$d/relay.io" -p "$rpid" >/dev/null 2>&1 &
		sr=$!
		sleep 0.5
		out=$("$connload" run "$port" 4 1)
		sn=$(echo "$out" | sed -n 's/^conns \([0-9]*\) .*/\1/p')
		kill -INT $sr 2>/dev/null
		wait $sr 2>/dev/null
		bytes=$(grep '<UNIX' "$d/relay.io" | sed -n 's/.* = \([0-9][0-9]*\)$/\1/p' | awk '{ s += $1 } END { print s + 0 }')
		row[$kind,bytes]=$(awk -v b="$bytes" -v n="$sn" 'BEGIN { if (n > 0) printf "%d", b / n; else print "-" }')
	fi
	kill "$rpid" $bpid 2>/dev/null
	wait "$rpid" $bpid 2>/dev/null
}

profile relay
profile pair --pair
kinds="relay pair"
if [ "$(id -u)" = 0 ]; then
	profile direct
	kinds="$kinds direct"
fi

printf '\nper relayed connection, 32 in flight, %s s (system calls: under strace, a separate run)\n' "$secs"
printf '%-8s %8s %11s %11s %15s %15s %8s %8s %10s\n' "" "conn/s" "relay CPU" "broker CPU" "relay calls" "broker calls" \
	"records" "commits" "chan bytes"
printf '%-8s %8s %11s %11s %15s %15s %8s %8s %10s\n' "" "" "us" "us" "all / waits" "all / waits" "" "" ""
for k in $kinds; do
	printf '%-8s %8s %11s %11s %15s %15s %8s %8s %10s\n' "$k" "${row[$k,rate]}" "${row[$k,relay_cpu]}" \
		"${row[$k,broker_cpu]}" "${row[$k,relay_sys]/ / / }" "${row[$k,broker_sys]/ / / }" "${row[$k,records]}" \
		"${row[$k,commits]}" "${row[$k,bytes]}"
done
# A profile that measured nothing is a failed bench; so is one whose Relay is not one record a
# connection, or whose pair is not two (checkpoints and session records add a little to each).
for k in $kinds; do
	case ${row[$k,rate]} in '' | 0) echo "relay_profile: $k measured nothing"; exit 1 ;; esac
done
awk -v r="${row[relay,records]}" -v p="${row[pair,records]}" 'BEGIN { exit !(r >= 1 && r < 1.1 && p >= 2 && p < 2.1) }' ||
	{ echo "relay_profile: records per connection: relay ${row[relay,records]} (want 1), pair ${row[pair,records]} (want 2)"; exit 1; }

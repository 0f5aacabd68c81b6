#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# audit_ship.sh BROKERD WFPBCTL ACK_CLIENT WORKDIR [SECONDS]: the audit log shipped to a real
# rsyslog while 32 clients load the broker with durably audited Listen+Release, in one run:
#   broker records/s     the records the broker made durable per second under the load
#   acked records/s      the records rsyslog acknowledged to the follower per second meanwhile
#   record -> ack        from each record's time (taken as it is made; durable a few ms later)
#                        to rsyslog's acknowledgement, p50/p99, from the follower's --stats
# with the follower's default poll (250 ms) and with --poll-ms 25; then the rate at which the
# follower drains a backlog (the whole log from seq 1) when nothing limits it but itself.
# rsyslog: imrelp on loopback, a ruleset with a direct queue (acknowledged once written), omfile.
set -u
brokerd=$1 wfpbctl=$2 ack=$3 work=$4 secs=${5:-5}
rm -rf "$work"
mkdir -p "$work/run" "$work/state" "$work/rs"
work=$(cd "$work" && pwd)
pids= load= rs=
cleanup() { for p in $pids $load $rs; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; }
trap cleanup EXIT
. "$(dirname "$0")/../tests/rsyslog.sh"

rs_conf() { cat >"$work/rs/rsyslog.conf" <<CONF
global(workDirectory="$work/rs" maxMessageSize="256k")
module(load="imrelp")
input(type="imrelp" address="127.0.0.1" port="$port" ruleset="wfpbroker")
template(name="wfpbroker-line" type="string" string="%msg%\n")
ruleset(name="wfpbroker" queue.type="Direct") {
    action(type="omfile" file="$work/collected.jsonl" template="wfpbroker-line")
}
CONF
}
port=
rsyslog_up "$work/rs/rsyslog.conf" rs_conf port || { echo "audit_ship: rsyslog did not start"; exit 1; }
rs=$rs_pid

cat >"$work/b.conf" <<CONF
[service]
endpoint = $work/run/b.sock
state_dir = $work/state
backend = sim
max_sessions = 256

[principal bench]
uid = $(id -u)
ops = listen admin
listen = 127.0.0.1/32:*
CONF
"$brokerd" --config "$work/b.conf" 2>"$work/broker.log" &
pids="$pids $!"
for _ in $(seq 1 200); do
	"$wfpbctl" --endpoint "$work/run/b.sock" --server-key "$work/state/server.pub" --timeout 500 ping >/dev/null 2>&1 &&
		break
	sleep 0.02
done
# The broker's last durable record, asked of the broker (reading the log would take longer than a poll).
last_seq() { "$wfpbctl" --endpoint "$work/run/b.sock" --server-key "$work/state/server.pub" status 2>/dev/null |
	sed -n 's/^audit_durable_seq \([0-9]*\)$/\1/p'; }
cursor() { cat "$1" 2>/dev/null || echo 0; }
now_ms() { date +%s%3N; }
[ -n "$(last_seq)" ] || { echo "audit_ship: the broker did not start"; cat "$work/broker.log"; exit 1; }
declare -A row

# run NAME POLL_MS: load for $secs with a follower shipping; fills row[NAME,*].
run() {
	local name=$1 poll=$2 cur="$work/cursor.$1" fpid s0 s1 c0 c1 t0 t1 i stats
	echo "$(last_seq)" >"$cur"	# ship what this run's load makes, from here on
	"$wfpbctl" audit export --json --follow --cursor "$cur" --relp "127.0.0.1:$port" --poll-ms "$poll" --stats \
		"$work/state/audit.log" 2>"$work/follower.$name.log" &
	fpid=$!
	sleep 0.5
	s0=$(last_seq) c0=$(cursor "$cur") t0=$(now_ms)
	load=
	for i in $(seq 1 32); do
		"$ack" "$work/run/b.sock" "$work/state/server.pub" /dev/null >/dev/null 2>&1 &
		load="$load $!"
	done
	sleep "$secs"
	s1=$(last_seq) c1=$(cursor "$cur") t1=$(now_ms)
	# shellcheck disable=SC2086
	kill $load 2>/dev/null
	wait $load 2>/dev/null
	load=
	s1=${s1:-0}
	for _ in $(seq 1 600); do [ "$(cursor "$cur")" -ge "$(last_seq)" ] && break; sleep 0.1; done
	row[$name,caught]=$(( $(now_ms) - t1 ))
	kill -TERM "$fpid"; wait "$fpid" 2>/dev/null
	stats=$(grep '^relp:' "$work/follower.$name.log")
	row[$name,broker]=$(( (s1 - s0) * 1000 / (t1 - t0) ))
	row[$name,acked]=$(( (c1 - c0) * 1000 / (t1 - t0) ))
	row[$name,p50]=$(echo "$stats" | sed -n 's/.* p50 \([0-9]*\) ms.*/\1/p')
	row[$name,p99]=$(echo "$stats" | sed -n 's/.* p99 \([0-9]*\) ms.*/\1/p')
}
run default 250
run fast 25

# The backlog: the whole log from seq 1 through the follower, nothing else running.
total=$(last_seq)
t0=$(now_ms)
"$wfpbctl" audit export --json --follow --cursor "$work/cursor.drain" --relp "127.0.0.1:$port" --poll-ms 25 \
	"$work/state/audit.log" 2>"$work/follower.drain.log" &
fpid=$!
for _ in $(seq 1 1200); do [ "$(cursor "$work/cursor.drain")" -ge "$total" ] && break; sleep 0.05; done
t1=$(now_ms)
drained=$(cursor "$work/cursor.drain")
kill -TERM "$fpid"; wait "$fpid" 2>/dev/null

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 > 0) printf "%.2f", a / b; else print "n/a" }'; }
printf '\naudit shipping: broker -> audit export --follow --relp -> rsyslog (imrelp, direct queue, omfile),\n'
printf '32 clients of durable Listen+Release for %s s\n' "$secs"
printf '%-24s %18s %18s %12s %22s %14s\n' "" "broker records/s" "acked records/s" "acked/broker" \
	"record->ack p50/p99" "caught up in"
for r in default fast; do
	case $r in default) label="poll 250 ms (default)" ;; fast) label="poll 25 ms" ;; esac
	printf '%-24s %18s %18s %12s %22s %14s\n' "$label" "${row[$r,broker]}" "${row[$r,acked]}" \
		"$(ratio "${row[$r,acked]}" "${row[$r,broker]}")" "${row[$r,p50]:-?}/${row[$r,p99]:-?} ms" "${row[$r,caught]} ms"
done
printf 'backlog: the %s records from seq 1 shipped in %s ms (and %s the broker wrote meanwhile): %s records/s\n' \
	"$total" "$((t1 - t0))" "$((drained > total ? drained - total : 0))" "$(( drained * 1000 / (t1 - t0 > 0 ? t1 - t0 : 1) ))"
# A run that did not measure what it says fails: every record shipped, every figure there.
for r in default fast; do
	[ -n "${row[$r,p50]}" ] && [ "${row[$r,broker]}" -gt 0 ] || { echo "audit_ship: the $r run measured nothing"; exit 1; }
done
[ "$drained" -ge "$total" ] || { echo "audit_ship: the backlog was not shipped"; exit 1; }

#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# conn_rate.sh BROKERD RELAY CONNLOAD WORKDIR [SECONDS]: new connections per second, each
# connect -> 6 bytes -> echo -> close (bench/connload.c), at 1, 32 and 256 in flight, against:
#   the origin directly (connload's own epoll echo server)
#   wfpb-relay --direct   the same relay with no broker, making the backend's privileged calls
#                         itself (root): the limit for a relay
#   wfpb-relay + broker   the relay as shipped, through wfpbrokerd (sim backend, audit log on and
#                         durable as shipped): one Relay request per connection
#   ... audit log off     the same with the broker's audit log off: what the durable records cost
#   ... --pair            the same, each connection an Accept then a Connect (two requests, two
#                         records): what a proxy that decides per connection pays
#   haproxy               Debian's, mode tcp, the relay users would pick instead
# all in one run, then the ratios the targets in docs/PERFORMANCE.md are stated in.
set -u
brokerd=$1 relay=$2 connload=$3 work=$4 secs=${5:-3}
rm -rf "$work"
mkdir -p "$work/run" "$work/state"
work=$(cd "$work" && pwd)
pids=
cleanup() { for p in $pids; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; }
trap cleanup EXIT
bg() { "$@" & pids="$pids $!"; }
. "$(dirname "$0")/../tests/rsyslog.sh"	# free_low_port, listening
port_from() { # port_from LOG: the port a relay said it listens on
	for _ in $(seq 1 100); do
		sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$1" | head -n 1 | grep . && return 0
		sleep 0.05
	done
	return 1
}

bg "$connload" echo "$work/origin.port"
for _ in $(seq 1 100); do [ -s "$work/origin.port" ] && break; sleep 0.05; done
origin=$(cat "$work/origin.port")

# relay_via NAME AUDIT [RELAY OPTIONS]: a broker (audit = AUDIT) and a relay through it; the relay's
# port in $port.
relay_via() {
	mkdir -p "$work/state.$1"
	cat >"$work/$1.conf" <<CONF
[service]
endpoint = $work/run/$1.sock
state_dir = $work/state.$1
backend = sim
audit = $2
max_sessions = 512

[principal relay]
uid = $(id -u)
ops = listen accept connect
listen = 127.0.0.1/32:*
connect = 127.0.0.1/32:*
CONF
	bg "$brokerd" --config "$work/$1.conf" 2>"$work/broker.$1.log"
	for _ in $(seq 1 100); do [ -S "$work/run/$1.sock" ] && break; sleep 0.05; done
	local name=$1
	shift 2
	bg "$relay" --quiet "$@" --endpoint "$work/run/$name.sock" --server-key "$work/state.$name/server.pub" \
		--listen 127.0.0.1:0 --to "127.0.0.1:$origin" >"$work/relay.$name.log" 2>&1
	port=$(port_from "$work/relay.$name.log") || { echo "conn_rate: the relay through $name did not start"; \
		cat "$work/relay.$name.log"; exit 1; }
}
relay_via on on
via_broker=$port
relay_via off off
via_broker_off=$port
relay_via pair on --pair
via_broker_pair=$port

direct=
if [ "$(id -u)" = 0 ]; then
	bg "$relay" --direct --quiet --listen 127.0.0.1:0 --to "127.0.0.1:$origin" >"$work/direct.log" 2>&1
	direct=$(port_from "$work/direct.log") || { echo "conn_rate: wfpb-relay --direct did not start"; \
		cat "$work/direct.log"; exit 1; }
fi
haproxy_port=
if command -v haproxy >/dev/null; then
	# A free port below the ephemeral range (as the tests pick theirs), tried again if taken meanwhile.
	for _ in 1 2 3 4 5; do
		haproxy_port=$(free_low_port) || break
		cat >"$work/haproxy.cfg" <<CFG
global
  maxconn 8192
defaults
  mode tcp
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend relay
  bind 127.0.0.1:$haproxy_port
  default_backend origin
backend origin
  server origin 127.0.0.1:$origin
CFG
		bg haproxy -db -f "$work/haproxy.cfg" >"$work/haproxy.log" 2>&1
		hp=$!
		for _ in $(seq 1 100); do
			listening "$haproxy_port" && break
			kill -0 "$hp" 2>/dev/null || break	# it gave up (a port taken, a bad configuration)
			sleep 0.05
		done
		listening "$haproxy_port" && break
		haproxy_port=
	done
	# A baseline that is installed but could not run is a failed bench, not a row of n/a.
	if [ -z "$haproxy_port" ]; then
		echo "conn_rate: haproxy did not start: $(tail -n 1 "$work/haproxy.log" 2>/dev/null)"
		exit 1
	fi
fi

declare -A rate p50 p99
measure() { # measure NAME PORT
	local c out
	for c in 1 32 256; do
		if [ -z "$2" ]; then
			rate[$1,$c]=n/a p50[$1,$c]=- p99[$1,$c]=-
			continue
		fi
		out=$("$connload" run "$2" "$c" "$secs")
		rate[$1,$c]=$(echo "$out" | sed -n 's/.* rate \([0-9]*\)\/s.*/\1/p')
		p50[$1,$c]=$(echo "$out" | sed -n 's/.* p50 \([0-9]*\) us.*/\1/p')
		p99[$1,$c]=$(echo "$out" | sed -n 's/.* p99 \([0-9]*\) us.*/\1/p')
		echo "$out" | grep -q 'errors 0$' || echo "  ($1, $c in flight: $out)"
	done
}
measure origin "$origin"
measure direct "$direct"
measure broker "$via_broker"
measure broker_off "$via_broker_off"
measure broker_pair "$via_broker_pair"
measure haproxy "$haproxy_port"

printf '\nnew connections/s, connect -> 6 B -> echo -> close, %s s each (p50/p99 setup, us)\n' "$secs"
printf '%-22s %24s %24s %24s\n' "" "1 in flight" "32 in flight" "256 in flight"
for who in origin direct broker broker_off broker_pair haproxy; do
	case $who in
	origin) label="origin directly" ;;
	direct) label="wfpb-relay --direct" ;;
	broker) label="wfpb-relay + broker" ;;
	broker_off) label="  ... audit log off" ;;
	broker_pair) label="  ... --pair" ;;
	haproxy) label="haproxy (mode tcp)" ;;
	esac
	printf '%-22s' "$label"
	for c in 1 32 256; do
		printf ' %24s' "${rate[$who,$c]} (${p50[$who,$c]}/${p99[$who,$c]})"
	done
	printf '\n'
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 > 0 && a != "n/a") printf "%.2f", a / b; else print "n/a" }'; }
# One durable write of a record's size where the broker's audit log lives, measured in this run:
# 500 appends of 256 bytes, each followed by its fdatasync (dd oflag=dsync).
fsync_us=$(dd if=/dev/zero of="$work/state.on/dsync.probe" bs=256 count=500 oflag=dsync 2>&1 |
	sed -n 's/.* copied, \([0-9.]*\) s.*/\1/p' | awk '{ printf "%d", $1 * 1e6 / 500 }')
rm -f "$work/state.on/dsync.probe"
for c in 32 256; do
	printf '\nat %s in flight: broker / --direct %s, broker / haproxy %s (targets >= 0.8); --pair / --direct %s\n' "$c" \
		"$(ratio "${rate[broker,$c]}" "${rate[direct,$c]}")" "$(ratio "${rate[broker,$c]}" "${rate[haproxy,$c]}")" \
		"$(ratio "${rate[broker_pair,$c]}" "${rate[direct,$c]}")"
done
printf 'at 32 in flight, the audit log off: broker / --direct %s (the durable records cost the difference)\n' \
	"$(ratio "${rate[broker_off,32]}" "${rate[direct,32]}")"
printf 'at 1 in flight: setup p50 %s us, --direct %s us + one fdatasync %s us + 100 us = %s us (target: at most that)\n' \
	"${p50[broker,1]}" "${p50[direct,1]}" "${fsync_us:-?}" \
	"$(awk -v d="${p50[direct,1]}" -v f="${fsync_us:-0}" 'BEGIN { if (d ~ /^[0-9]+$/) print d + f + 100; else print "n/a" }')"
# A run that did not measure what it says fails: the origin, the relay through the broker (audit
# on and off) and every baseline this machine has (--direct needs root, haproxy its package)
# carried connections at every concurrency.
expected="origin broker broker_off broker_pair"
[ -n "$direct" ] && expected="$expected direct"
[ -n "$haproxy_port" ] && expected="$expected haproxy"
for who in $expected; do
	for c in 1 32 256; do
		case ${rate[$who,$c]} in
		'' | n/a | 0) echo "conn_rate: $who at $c in flight measured nothing"; exit 1 ;;
		esac
	done
done

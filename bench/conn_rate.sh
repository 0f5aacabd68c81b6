#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# conn_rate.sh BROKERD RELAY CONNLOAD WORKDIR [SECONDS]: new connections per second, each
# connect -> 6 bytes -> echo -> close (bench/connload.c), at 1, 32 and 256 in flight, against:
#   the origin directly (connload's own epoll echo server)
#   wfpb-relay --direct   the same relay with no broker, making the backend's privileged calls
#                         itself (root): the limit for a relay
#   wfpb-relay + broker   the relay as shipped, through wfpbrokerd (sim backend, audit log on and
#                         durable as shipped)
#   ... audit log off     the same with the broker's audit log off: what the durable records cost
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

# relay_via NAME AUDIT: a broker (audit = AUDIT) and a relay through it; the relay's port in $port.
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
	bg "$relay" --quiet --endpoint "$work/run/$1.sock" --server-key "$work/state.$1/server.pub" \
		--listen 127.0.0.1:0 --to "127.0.0.1:$origin" >"$work/relay.$1.log" 2>&1
	port=$(port_from "$work/relay.$1.log") || { echo "conn_rate: the relay through $1 did not start"; \
		cat "$work/relay.$1.log"; exit 1; }
}
relay_via on on
via_broker=$port
relay_via off off
via_broker_off=$port

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
measure haproxy "$haproxy_port"

printf '\nnew connections/s, connect -> 6 B -> echo -> close, %s s each (p50/p99 setup, us)\n' "$secs"
printf '%-22s %24s %24s %24s\n' "" "1 in flight" "32 in flight" "256 in flight"
for who in origin direct broker broker_off haproxy; do
	case $who in
	origin) label="origin directly" ;;
	direct) label="wfpb-relay --direct" ;;
	broker) label="wfpb-relay + broker" ;;
	broker_off) label="  ... audit log off" ;;
	haproxy) label="haproxy (mode tcp)" ;;
	esac
	printf '%-22s' "$label"
	for c in 1 32 256; do
		printf ' %24s' "${rate[$who,$c]} (${p50[$who,$c]}/${p99[$who,$c]})"
	done
	printf '\n'
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 > 0 && a != "n/a") printf "%.2f", a / b; else print "n/a" }'; }
printf '\nat 32 in flight: broker / --direct %s (target >= 0.8), p99 %s x --direct'"'"'s (target <= 2), broker / haproxy %s (target >= 1)\n' \
	"$(ratio "${rate[broker,32]}" "${rate[direct,32]}")" "$(ratio "${p99[broker,32]}" "${p99[direct,32]}")" \
	"$(ratio "${rate[broker,32]}" "${rate[haproxy,32]}")"
printf 'at 32 in flight, the audit log off: broker / --direct %s (the durable records cost the difference)\n' \
	"$(ratio "${rate[broker_off,32]}" "${rate[direct,32]}")"
# A run that did not measure what it says fails: the origin, the relay through the broker (audit
# on and off) and every baseline this machine has (--direct needs root, haproxy its package)
# carried connections at every concurrency.
expected="origin broker broker_off"
[ -n "$direct" ] && expected="$expected direct"
[ -n "$haproxy_port" ] && expected="$expected haproxy"
for who in $expected; do
	for c in 1 32 256; do
		case ${rate[$who,$c]} in
		'' | n/a | 0) echo "conn_rate: $who at $c in flight measured nothing"; exit 1 ;;
		esac
	done
done

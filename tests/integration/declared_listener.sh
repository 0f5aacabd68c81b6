#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# declared_listener.sh BROKERD RELAY TCP_ECHO WORKDIR FDSTORE_HARNESS
#
# A listener the configuration declares is the broker's, not the proxy's: a wfpb-relay accepts
# on it by name (--listener) and relays one connection, then exits; a client connects while no
# relay runs (the broker's listener takes it into its queue: not refused) and is relayed by the
# next relay run. (Another principal's refusal: test_session declared_listener_outlives_its_sessions.)
#
# Then the broker's own restart, under a harness that plays systemd's file descriptor store: the
# broker stores its declared listener (FDSTORE=1), is stopped, and while nothing runs for 2 s a
# client connects (the stored socket queues it: not refused); the broker starts again with the
# socket from LISTEN_FDS. A relay that ran before the restart survives it (libwfpb's reconnect):
# it relays a connection before, the client that came while the broker was down, and one after.
set -u
brokerd=$1 relay=$2 echo_bin=$3 work=$4 harness=$5
. "$(dirname "$0")/../check.sh"
. "$(dirname "$0")/../rsyslog.sh"	# free_low_port
rm -rf "$work"
mkdir -p "$work/state"
work=$(cd "$work" && pwd)
pids=
cleanup() { for p in $pids; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; }
trap cleanup EXIT

"$echo_bin" server "$work/origin.port" >"$work/origin.log" 2>&1 &
pids="$pids $!"
for _ in $(seq 1 50); do [ -s "$work/origin.port" ] && break; sleep 0.1; done
origin=$(cat "$work/origin.port")
port=$(free_low_port)
cat >"$work/wfpbroker.conf" <<CONF
[service]
endpoint = $work/broker.sock
state_dir = $work/state
backend = sim
[principal proxy]
uid = $(id -u)
ops = accept connect
connect = 127.0.0.1/32:*
[listener front]
address = 127.0.0.1:$port
principal = proxy
CONF
"$brokerd" --config "$work/wfpbroker.conf" >"$work/broker.log" 2>&1 &
pids="$pids $!"
for _ in $(seq 1 50); do [ -S "$work/broker.sock" ] && break; sleep 0.1; done
# (Said by its log: a probe connection would wait in the listener's queue for the first relay.)
for _ in $(seq 1 50); do grep -q "listener front on 127.0.0.1:$port" "$work/broker.log" && break; sleep 0.1; done
check "the broker opened the declared listener at start (127.0.0.1:$port)" \
	grep -q "listener front on 127.0.0.1:$port, for principal proxy" "$work/broker.log"

run_relay() { # run_relay LOG: one connection through the declared listener, then exit
	"$relay" --endpoint "$work/broker.sock" --server-key "$work/state/server.pub" --listener front \
		--to "127.0.0.1:$origin" --max-connections 1 >"$1" 2>&1
}
run_relay "$work/relay1.log" &
relay1=$!
for _ in $(seq 1 50); do grep -q "accepting on the broker's listener front" "$work/relay1.log" && break; sleep 0.1; done
check "a relay accepts on it by name and relays a connection" \
	eval 'test "$("$echo_bin" client "$port" hello 127.0.0.1 10)" = hello'
check "  and exits after its one connection" wait "$relay1"

# No relay runs: the broker's listener still takes the connection, and it waits.
"$echo_bin" client "$port" again 127.0.0.1 20 >"$work/client2.out" 2>&1 &
client2=$!
sleep 1
check "a client that connects while no relay runs is not refused (it waits in the queue)" kill -0 "$client2"
run_relay "$work/relay2.log" &
relay2=$!
check "the next relay run relays it" eval 'wait "$client2" && test "$(cat "$work/client2.out")" = again'
wait "$relay2" 2>/dev/null

kill %1 2>/dev/null

# --- the broker's restart, the listener kept in the store --------------------------------
for p in $pids; do kill "$p" 2>/dev/null; done
wait 2>/dev/null
pids=
"$echo_bin" server "$work/origin.port" >"$work/origin.log" 2>&1 &
pids="$pids $!"
: >"$work/origin.port"
for _ in $(seq 1 50); do [ -s "$work/origin.port" ] && break; sleep 0.1; done
origin=$(cat "$work/origin.port")
: >"$work/broker.log"
"$harness" "$work/notify.sock" "$work/notify.log" 2000 "$brokerd" --config "$work/wfpbroker.conf" \
	>>"$work/broker.log" 2>&1 &
h=$!
pids="$pids $h"
for _ in $(seq 1 100); do grep -q '^READY=1' "$work/notify.log" 2>/dev/null && break; sleep 0.1; done
check "the broker stores its declared listener with systemd (FDSTORE=1 FDNAME=listener-front)" \
	grep -q '^FDSTORE=1 FDNAME=listener-front$' "$work/notify.log"
# One relay for the whole restart: three connections, one before, two after.
"$relay" --endpoint "$work/broker.sock" --server-key "$work/state/server.pub" --listener front \
	--to "127.0.0.1:$origin" --max-connections 3 >"$work/relay-across.log" 2>&1 &
across=$!
pids="$pids $across"
for _ in $(seq 1 50); do grep -q "accepting on the broker's listener front" "$work/relay-across.log" && break; sleep 0.1; done
check "before the restart the relay relays a connection" \
	eval 'test "$("$echo_bin" client "$port" before 127.0.0.1 10)" = before'
kill -USR1 "$h"
for _ in $(seq 1 100); do grep -q 'harness: stopped' "$work/notify.log" && break; sleep 0.05; done
"$echo_bin" client "$port" restart 127.0.0.1 20 >"$work/client3.out" 2>&1 &
client3=$!
sleep 0.5
check "a client that connects while the broker is down is not refused" kill -0 "$client3"
for _ in $(seq 1 100); do [ "$(grep -c '^READY=1' "$work/notify.log")" -ge 2 ] && break; sleep 0.1; done
check "the broker started again with the stored listener" \
	grep -q "listener front on 127.0.0.1:$port, for principal proxy (kept across the restart)" "$work/broker.log"
check "the relay that ran across the restart relays the client that came while the broker was down" \
	eval 'wait "$client3" && test "$(cat "$work/client3.out")" = restart'
check "  and a client after it" eval 'test "$("$echo_bin" client "$port" after 127.0.0.1 10)" = after'
check "  it said the session ended and that it opened a new one" \
	eval 'grep -q "the broker ended the session" "$work/relay-across.log" && grep -q "a new session with the broker" "$work/relay-across.log"'
check "  and exits after its three connections, as asked" wait "$across"
sed 's/^/    /' "$work/relay-across.log"
summary

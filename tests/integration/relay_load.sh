#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# relay_load.sh BROKERD RELAY RELAY_LOAD WORKDIR WFPBCTL [N [relay|pair]]
#
# N (256) clients at once through one wfpb-relay and the broker (sim backend,
# audit log on and durable) to an echo origin that holds back its answer to
# one connection for 3 s: the others are all relayed meanwhile (relay-load
# checks), then that one too. Then the broker's counters are back where they
# were (no session, listener, stash entry or request left but the relay's), and the audit log
# follows every relayed connection as one flow: one Relay record (the default), or with `pair`
# (wfpb-relay --pair) an Accept and a Connect that share a flow_id.
set -u
brokerd=$1 relay=$2 load=$3 work=$4 wfpbctl=$5 n=${6:-256} how=${7:-relay}
pair_opt=
[ "$how" = pair ] && pair_opt=--pair
. "$(dirname "$0")/../check.sh"
rm -rf "$work"
mkdir -p "$work/state"
pids=
cleanup() { for p in $pids; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; }
trap cleanup EXIT
cat >"$work/wfpbroker.conf" <<CONF
[service]
endpoint = $work/broker.sock
state_dir = $work/state
backend = sim
[principal relay]
uid = $(id -u)
ops = listen accept connect admin
listen = 127.0.0.1/32:*
connect = 127.0.0.1/32:*
CONF
"$brokerd" --config "$work/wfpbroker.conf" >"$work/broker.log" 2>&1 &
pids="$pids $!"
for _ in $(seq 1 50); do [ -S "$work/broker.sock" ] && break; sleep 0.1; done
# The origin is relay-load's own; it names its port, then waits for the relay's.
"$load" "$work/origin.port" "$work/relay.port" "$n" >"$work/load.out" 2>&1 &
load_pid=$!
pids="$pids $load_pid"
for _ in $(seq 1 50); do [ -s "$work/origin.port" ] && break; sleep 0.1; done
"$relay" --quiet $pair_opt --endpoint "$work/broker.sock" --server-key "$work/state/server.pub" \
	--listen 127.0.0.1:0 --to "127.0.0.1:$(cat "$work/origin.port")" >"$work/relay.log" 2>&1 &
pids="$pids $!"
for _ in $(seq 1 100); do grep -q 'listening on' "$work/relay.log" && break; sleep 0.1; done
rport=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\),.*/\1/p' "$work/relay.log")
check "the relay listens through the broker" test -n "$rport"
echo "${rport:-0}" >"$work/relay.port.tmp" && mv "$work/relay.port.tmp" "$work/relay.port"
check "$n clients at once, one upstream slow: the others are relayed meanwhile, then it" wait "$load_pid"
sed 's/^/    /' "$work/load.out"
tail -3 "$work/relay.log" | sed 's/^/    /'
"$wfpbctl" audit export --json "$work/state/audit.log" >"$work/audit.jsonl"
flows() { grep "\"op\":\"$1\"" "$work/audit.jsonl" | grep '"status":"OK"' |
	sed -n 's/.*"flow_id":"\([0-9a-f]*\)".*/\1/p' | sort; }
if [ "$how" = pair ]; then
	# One flow per relayed connection, from the Accept that queried its records to the Connect that
	# carried them upstream (the relay's Accepts keep records for one use, so each is applied once).
	flows accept >"$work/accept.flows"
	flows connect >"$work/connect.flows"
	na=$(wc -l <"$work/accept.flows") nc=$(wc -l <"$work/connect.flows")
	check "$n relayed connections are $na flows, each with its Accept and its Connect ($nc Connects)" eval \
		"test $na -ge $n && test \$(sort -u '$work/accept.flows' | wc -l) -eq $na && cmp -s '$work/accept.flows' '$work/connect.flows'"
	check "  every Accept and Connect of a flow names the connection's original destination (127.0.0.1:$rport)" eval \
		"test \$(grep -E '\"op\":\"(accept|connect)\"' '$work/audit.jsonl' | grep '\"status\":\"OK\"' |
		 grep -c '\"original_destination\":\"127.0.0.1:$rport\"') -eq $((na + nc))"
else
	# One request, one record, one flow per relayed connection, and no Accept or Connect at all.
	flows relay >"$work/relay.flows"
	nr=$(wc -l <"$work/relay.flows")
	check "$n relayed connections are $nr Relay records, each its own flow" eval \
		"test $nr -ge $n && test \$(sort -u '$work/relay.flows' | wc -l) -eq $nr"
	check "  no Accept or Connect was needed" eval \
		"! grep -qE '\"op\":\"(accept|connect)\"' '$work/audit.jsonl'"
	check "  every Relay names the connection's original destination (127.0.0.1:$rport)" eval \
		"test \$(grep '\"op\":\"relay\"' '$work/audit.jsonl' | grep '\"status\":\"OK\"' |
		 grep -c '\"original_destination\":\"127.0.0.1:$rport\"') -eq $nr"
fi
summary

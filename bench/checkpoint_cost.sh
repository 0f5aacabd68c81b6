#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# checkpoint_cost.sh BROKERD WFPBCTL ACK_CLIENT WORKDIR [OPS [CLIENTS [ROUNDS]]]: what signing the
# audit log more often costs (docs/PERFORMANCE.md, "Signing more often"), in one run. The same
# load, durably audited Listen+Release from CLIENTS clients (OPS each), against two brokers:
#   interval   checkpoint_every = 1000, checkpoint_ms = 10000 (the defaults)
#   every      checkpoint_every = 1: a signed checkpoint after every record, an upper bound on
#              signing at every commit that holds an effectful record
# run in alternation ROUNDS times so that both see the same machine; reported as Listen+Release
# pairs per second (the median round of each) and the ratio every/interval, with the checkpoints
# each log holds.
set -u
brokerd=$1 wfpbctl=$2 ack=$3 work=$4 ops=${5:-2000} clients=${6:-8} rounds=${7:-3}
rm -rf "$work"
mkdir -p "$work"
work=$(cd "$work" && pwd)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; }
trap cleanup EXIT

# run KIND EVERY: one round, its requests/s on stdout and its checkpoints into $work/KIND.cps
run() {
	local kind=$1 every=$2 d=$work/$1 t0 t1 i cps
	rm -rf "$d"
	mkdir -p "$d/run" "$d/state"
	cat >"$d/b.conf" <<CONF
[service]
endpoint = $d/run/b.sock
state_dir = $d/state
backend = sim
checkpoint_every = $every

[principal bench]
uid = $(id -u)
ops = listen admin
listen = 127.0.0.1/32:*
CONF
	"$brokerd" --config "$d/b.conf" 2>"$d/broker.log" &
	pid=$!
	for _ in $(seq 1 200); do
		"$wfpbctl" --endpoint "$d/run/b.sock" --server-key "$d/state/server.pub" --timeout 500 ping \
			>/dev/null 2>&1 && break
		sleep 0.02
	done
	t0=$(date +%s%N)
	for ((i = 0; i < clients; i++)); do
		"$ack" "$d/run/b.sock" "$d/state/server.pub" "$d/acked.$i" "$ops" >/dev/null 2>&1 &
	done
	wait $(jobs -p | grep -vx "$pid") 2>/dev/null
	t1=$(date +%s%N)
	kill -TERM "$pid"
	wait "$pid" 2>/dev/null
	pid=
	cps=$("$wfpbctl" audit export --json "$d/state/audit.log" | grep -c '"kind":"AUDIT_CHECKPOINT"')
	echo "$cps" >>"$work/$kind.cps"
	cat "$d"/acked.* | wc -l | awk -v ns=$((t1 - t0)) '{ printf "%.0f\n", $1 / (ns / 1e9) }'
}

for ((r = 0; r < rounds; r++)); do
	run interval 1000 >>"$work/interval.rate"
	run every 1 >>"$work/every.rate"
done
median() { sort -n "$1" | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
mi=$(median "$work/interval.rate")
me=$(median "$work/every.rate")
ci=$(median "$work/interval.cps")
ce=$(median "$work/every.cps")
echo "signing the audit log more often: $clients clients x $ops durably audited Listen+Release, $rounds rounds each"
printf '  %-40s %8s Listen+Release/s  (%s checkpoints in the log)\n' "interval (checkpoint_every 1000, 10 s)" "$mi" "$ci"
printf '  %-40s %8s Listen+Release/s  (%s checkpoints in the log)\n' "every record (checkpoint_every 1)" "$me" "$ce"
awk -v a="$me" -v b="$mi" 'BEGIN { if (b > 0) printf "  ratio every/interval %.2f\n", a / b }'
# It measured, and the two brokers signed as configured.
test "$mi" -gt 0 && test "$me" -gt 0 && test "$ce" -gt "$ci"

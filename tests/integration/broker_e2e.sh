#!/usr/bin/env bash
# broker_e2e.sh native|wine BROKERD WFPBCTL BROKER_TEST WORKDIR
#
# Starts the real broker (natively, or the .exe under Wine on a real named
# pipe), pings it with wfpbctl over NK and IK, runs broker-test's good and
# hostile clients against it, then (natively) checks reload, a second broker,
# file modes and a graceful SIGTERM. Ends with "N passed, M failed".
set -u
mode=$1 brokerd=$2 wfpbctl=$3 broker_test=$4 work=$5
pass=0 fail=0
ok() { echo "ok   $*"; pass=$((pass + 1)); }
ko() { echo "FAIL $*"; fail=$((fail + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else ko "$what"; fi; }

rm -rf "$work"
mkdir -p "$work"
work=$(cd "$work" && pwd)
pid=

if [ "$mode" = wine ]; then
	winpath() { printf 'Z:%s' "${1//\//\\}"; }
	run() { local exe=$1; shift; wine "$exe" "$@"; }
	endpoint="\\\\.\\pipe\\wfpbtest-$$"
	state=$(winpath "$work/state")
	conf_arg=$(winpath "$work/wfpbroker.conf")
	pub_arg="$state\\server.pub"
	key_arg() { winpath "$work/$1.key"; }
	prefix_arg() { winpath "$work/$1"; }
else
	run() { "$@"; }
	endpoint="$work/run/wfpbroker.sock"
	state="$work/state"
	conf_arg="$work/wfpbroker.conf"
	pub_arg="$state/server.pub"
	key_arg() { printf '%s' "$work/$1.key"; }
	prefix_arg() { printf '%s' "$work/$1"; }
fi

cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	true
}
trap cleanup EXIT

# Client keys: one enrolled in the configuration, one not.
enrolled_hex=$(run "$wfpbctl" keygen --out "$(prefix_arg enrolled)" | tail -n 1 | tr -d '\r')
run "$wfpbctl" keygen --out "$(prefix_arg stranger)" >/dev/null
stranger_hex=$(tr -d '\r\n' <"$work/stranger.pub")
check "client keys generated" test ${#enrolled_hex} -eq 64 -a ${#stranger_hex} -eq 64

write_conf() {
	cat >"$work/wfpbroker.conf" <<CONF
; written by broker_e2e.sh
[service]
endpoint = $endpoint
state_dir = $state
handshake_timeout_ms = 500
idle_timeout_ms = 3000
max_sessions = 8

[clients]
key = $enrolled_hex
$1
CONF
}
write_conf ""

start_broker() {
	if [ "$mode" = wine ]; then
		wine "$brokerd" --console --config "$conf_arg" >>"$work/broker.log" 2>&1 &
	else
		"$brokerd" --config "$conf_arg" >>"$work/broker.log" 2>&1 &
	fi
	pid=$!
	for _ in $(seq 1 100); do
		if run "$wfpbctl" --endpoint "$endpoint" --server-key "$pub_arg" --timeout 2000 ping \
			>"$work/ping.out" 2>&1; then
			return 0
		fi
		kill -0 "$pid" 2>/dev/null || return 1
		sleep 0.2
	done
	return 1
}

if ! start_broker; then
	ko "broker starts and answers wfpbctl ping"
	cat "$work/broker.log" "$work/ping.out"
	echo "$pass passed, $fail failed"
	exit 1
fi
ok "broker starts and answers wfpbctl ping"
check "wfpbctl ping prints the round trip" grep -q 'pong from .*protocol 1, NK, rtt [0-9]* us' "$work/ping.out"
check "wfpbctl ping over IK" run "$wfpbctl" --endpoint "$endpoint" --server-key "$pub_arg" \
	--client-key "$(key_arg enrolled)" ping

not_there() {
	local out rc
	out=$(run "$wfpbctl" --endpoint "$1" --server-key "$pub_arg" --timeout 1000 ping 2>&1)
	rc=$?
	[ $rc -ne 0 ] && echo "$out" | grep -q "cannot reach the broker"
}
if [ "$mode" = wine ]; then
	check "wfpbctl: clear error and non-zero exit when no broker" not_there '\\.\pipe\wfpb-nobody-here'
else
	check "wfpbctl: clear error and non-zero exit when no broker" not_there "$work/nobody.sock"
fi

bt_args=("$endpoint" "$pub_arg" "$(key_arg enrolled)" "$(key_arg stranger)")
if run "$broker_test" "${bt_args[@]}" >"$work/broker-test.out" 2>&1; then
	ok "broker-test hostile and good clients"
else
	ko "broker-test hostile and good clients"
fi
sed 's/^/    /' "$work/broker-test.out"

if [ "$mode" = native ]; then
	ik_stranger() { "$wfpbctl" --endpoint "$endpoint" --server-key "$pub_arg" --client-key "$work/stranger.key" ping >/dev/null 2>&1; }
	check "unenrolled key refused before reload" eval '! ik_stranger'
	write_conf "key = $stranger_hex"
	kill -HUP "$pid"
	sleep 0.3
	check "SIGHUP reload enrols a new key" ik_stranger
	printf '[service]\nmax_sessions = 8\nmax_sessions = lots\n' >"$work/wfpbroker.conf"
	kill -HUP "$pid"
	sleep 0.3
	check "bad reload is rejected with its line number" grep -q 'reload rejected.*wfpbroker.conf:3:' "$work/broker.log"
	check "bad reload keeps the old configuration" ik_stranger
	check "socket is mode 0660" test "$(stat -c %a "$endpoint")" = 660
	check "private key is mode 0600" test "$(stat -c %a "$state/server.key")" = 600
	check "public key is mode 0644" test "$(stat -c %a "$state/server.pub")" = 644
	second_refused() {
		write_conf ""
		! timeout 5 "$brokerd" --config "$conf_arg" >"$work/second.log" 2>&1 &&
			grep -q "another broker is already listening" "$work/second.log"
	}
	check "a second broker refuses to steal a live socket" second_refused
	check "first broker still serves after the second tried" "$wfpbctl" --endpoint "$endpoint" --server-key "$pub_arg" ping
	kill -TERM "$pid"
	wait "$pid"
	rc=$?
	pid=
	check "SIGTERM stops the broker with status 0" test $rc -eq 0
	check "the socket is removed on stop" test ! -e "$endpoint"
fi

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]

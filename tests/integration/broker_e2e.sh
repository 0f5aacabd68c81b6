#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# broker_e2e.sh native|wine BROKERD WFPBCTL BROKER_TEST WORKDIR [HANDOVER_TEST RELAY TCP_ECHO NOTIFY_LISTEN]
#
# Starts the real broker (natively, or the .exe under Wine on a real named
# pipe), pings it with wfpbctl over NK and IK, runs broker-test's good and
# hostile clients against it, then (natively) checks reload, a second broker,
# file modes and a graceful SIGTERM. Ends with "N passed, M failed".
set -u
mode=$1 brokerd=$2 wfpbctl=$3 broker_test=$4 work=$5 handover_test=${6:-} relay=${7:-} tcp_echo=${8:-} udp_relay=${9:-}
notify_listen=${9:-}
. "$(dirname "$0")/../check.sh"

rm -rf "$work"
mkdir -p "$work"
work=$(cd "$work" && pwd)
pid=
helpers=

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
	for h in $helpers; do kill "$h" 2>/dev/null; done
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	true
}
trap cleanup EXIT

# Client keys: one enrolled in the configuration, one not.
enrolled_hex=$(run "$wfpbctl" keygen --out "$(prefix_arg enrolled)" | tail -n 1 | tr -d '\r')
run "$wfpbctl" keygen --out "$(prefix_arg stranger)" >/dev/null
stranger_hex=$(tr -d '\r\n' <"$work/stranger.pub")
check "client keys generated" test ${#enrolled_hex} -eq 64 -a ${#stranger_hex} -eq 64

group_line=
[ "$mode" = native ] && group_line="socket_group = nogroup"
write_conf() {
	cat >"$work/wfpbroker.conf" <<CONF
; written by broker_e2e.sh
[service]
endpoint = $endpoint
state_dir = $state
backend = sim
handshake_timeout_ms = 500
idle_timeout_ms = 3000
max_sessions = 8
output_stall_ms = 1000
workers = 4
$group_line

; root and wine-user may apply records they wrote (apply_foreign): handover-test sends garbage
; and re-sent records on purpose, to prove the backend parses them strictly.
[principal root]
uid = 0
ops = stash fetch admin listen accept connect query apply apply_foreign prepare udp_listen udp_flow
listen = 127.0.0.1/32:*
connect = 127.0.0.1/32:*
udp_listen = 127.0.0.1/32:*
udp_connect = 127.0.0.1/32:*

[principal ik-client]
key = $enrolled_hex

[principal app1]
uid = 1001
ops = stash fetch
max_stash = 3

[principal app2]
uid = 1002
ops = stash fetch

[principal wine-user]
sid = S-1-5-21-0-0-0-1000
ops = listen accept connect fetch stash query apply apply_foreign prepare admin udp_listen udp_flow
listen = 127.0.0.1/32:*
connect = 127.0.0.1/32:*
udp_listen = 127.0.0.1/32:*
udp_connect = 127.0.0.1/32:*

[principal relay]
uid = 1004
ops = listen accept connect
listen = 127.0.0.1/32:*
connect = 127.0.0.1/32:*
$1
CONF
}
write_conf ""

start_broker() {
	if [ "$mode" = wine ]; then
		wine "$brokerd" --console --config "$conf_arg" >>"$work/broker.log" 2>&1 &
	elif [ -n "$notify_listen" ]; then
		# systemd's side of Type=notify: every state change the broker reports, one line each.
		"$notify_listen" "$work/notify.sock" "$work/notify.log" &
		helpers="$helpers $!"
		for _ in $(seq 1 50); do [ -S "$work/notify.sock" ] && break; sleep 0.05; done
		NOTIFY_SOCKET=$work/notify.sock "$brokerd" --config "$conf_arg" >>"$work/broker.log" 2>&1 &
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
	summary
	exit 1
fi
ok "broker starts and answers wfpbctl ping"
check "wfpbctl ping prints the round trip" grep -q 'pong from .*protocol 2, NK, rtt [0-9]* us' "$work/ping.out"
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

if [ -n "$handover_test" ]; then
	if run "$handover_test" "$endpoint" "$pub_arg" >"$work/handover-test.out" 2>&1; then
		ok "handover-test: Listen/Accept/Connect/QueryRecords/ApplyRecords with real sockets"
	else
		ko "handover-test: Listen/Accept/Connect/QueryRecords/ApplyRecords with real sockets"
	fi
	sed 's/^/    /' "$work/handover-test.out"
fi

# The broker's counters, one by name (wfpbctl status: "name value" lines).
status_field() { run "$wfpbctl" --endpoint "$endpoint" --server-key "$pub_arg" status | tr -d '\r' | awk -v k="$1" '$1 == k { print $2 }'; }

# workers = 4 sizes the Windows completion-port pool; the Linux server is one thread.
if [ "$mode" = wine ]; then
	check "the broker serves with the 4 workers configured" test "$(status_field workers)" = 4
	check "status names the broker's process id (a callout's localRedirectTargetPID)" \
		test "$(status_field pid)" -gt 0
else
	check "the Linux broker serves on one thread whatever workers says" test "$(status_field workers)" = 1
fi

# relay_round_trip NAME CMD...: the relay command CMD (wfpb-relay, run as it must be) carries bytes
# from tcp-echo's client to its server and back through sockets the broker handed over, with the
# records applied and counted; on Linux, killing it releases its listener.
relay_round_trip() {
	local name=$1 eport applied0 listeners0 relay_pid rport reply
	shift
	rm -f "$work/echo.port"
	"$tcp_echo" server "$work/echo.port" &
	helpers="$helpers $!"
	for _ in $(seq 1 50); do [ -s "$work/echo.port" ] && break; sleep 0.1; done
	eport=$(cat "$work/echo.port")
	applied0=$(status_field records_applied)
	listeners0=$(status_field listeners)
	"$@" --endpoint "$endpoint" --server-key "$pub_arg" --listen 127.0.0.1:0 --to "127.0.0.1:$eport" \
		>"$work/relay.out" 2>&1 &
	relay_pid=$!
	helpers="$helpers $relay_pid"
	for _ in $(seq 1 100); do grep -q 'listening on' "$work/relay.out" && break; sleep 0.1; done
	rport=$(tr -d '\r' <"$work/relay.out" | sed -n 's/.*listening on 127.0.0.1:\([0-9]*\),.*/\1/p')
	check "$name listens through the broker" test -n "$rport"
	reply=$("$tcp_echo" client "${rport:-1}" "through $name and back" 127.0.0.1 10)
	check "bytes go client -> $name -> echo server -> back" test "$reply" = "through $name and back"
	check "$name connected upstream with the records applied" \
		grep -qE "upstream => 127.0.0.1:$eport( mark 0x[0-9a-f]+)? \(records applied\)" "$work/relay.out"
	check "Status counts the records $name applied" test "$(status_field records_applied)" -gt "${applied0:-0}"
	kill "$relay_pid" 2>/dev/null
	wait "$relay_pid" 2>/dev/null
	if [ "$mode" = native ]; then
		sleep 0.3
		check "killing $name releases its listener (Status)" test "$(status_field listeners)" = "$listeners0"
	fi
	sed 's/^/    /' "$work/relay.out"
}

if [ "$mode" = wine ] && [ -n "$relay" ]; then
	# wfpb-relay.exe between the host's echo client and server, sockets by WSADuplicateSocketW.
	if [ ! -x "$tcp_echo" ]; then
		ko "wfpb-relay.exe: the native tcp-echo helper is missing ($tcp_echo): build build/native first"
	else
		relay_round_trip wfpb-relay.exe wine "$relay"
	fi
fi

if [ "$mode" = wine ] && [ -n "$udp_relay" ]; then
	# wfpb-udp-relay.exe between the host's UDP client and server (sim: the broker reads the flows;
	# the held form needs WFP, which Wine has not).
	udp_relay_round_trip() {
		local uport rport reply relay_pid
		rm -f "$work/udp.port"
		"$tcp_echo" udp-server "$work/udp.port" 127.0.0.1 &
		helpers="$helpers $!"
		for _ in $(seq 1 50); do [ -s "$work/udp.port" ] && break; sleep 0.1; done
		uport=$(cat "$work/udp.port")
		wine "$udp_relay" --endpoint "$endpoint" --server-key "$pub_arg" --listen 127.0.0.1:0 \
			--to "127.0.0.1:$uport" >"$work/udp-relay.out" 2>&1 &
		relay_pid=$!
		helpers="$helpers $relay_pid"
		for _ in $(seq 1 100); do grep -q 'listening on' "$work/udp-relay.out" && break; sleep 0.1; done
		rport=$(tr -d '\r' <"$work/udp-relay.out" | sed -n 's/.*listening on 127.0.0.1:\([0-9]*\) .*/\1/p')
		check "wfpb-udp-relay.exe listens through the broker (udp)" test -n "$rport"
		reply=$("$tcp_echo" udp-client "${rport:-1}" "query" 127.0.0.1 10 2>&1)
		check "a query goes client -> wfpb-udp-relay.exe -> server, the answer back: \"$reply\"" \
			test "$reply" = "answer:query"
		check "wfpb-udp-relay.exe carried one flow, its first datagram forwarded by the broker" \
			grep -qE "flow 127.0.0.1:[0-9]+ -> 127.0.0.1:$rport, upstream => 127.0.0.1:$uport \(5 bytes forwarded\)" \
			"$work/udp-relay.out"
		kill "$relay_pid" 2>/dev/null
		wait "$relay_pid" 2>/dev/null
		sed 's/^/    /' "$work/udp-relay.out"
	}
	udp_relay_round_trip
fi

if [ "$mode" = wine ] && [ -n "$handover_test" ]; then
	# A second broker with the real wfp backend: Wine refuses the redirect ioctls.
	wfp_pipe="\\\\.\\pipe\\wfpbtest-wfp-$$"
	wfp_state=$(winpath "$work/state-wfp")
	{
		printf '[service]\nendpoint = %s\nstate_dir = %s\nbackend = wfp\n' "$wfp_pipe" "$wfp_state"
		printf '[principal wine-user]\nsid = S-1-5-21-0-0-0-1000\nops = listen accept connect apply_foreign udp_listen udp_flow\n'
		printf 'listen = 127.0.0.1/32:*\nconnect = 127.0.0.1/32:*\nudp_listen = 127.0.0.1/32:*\nudp_connect = 127.0.0.1/32:*\n'
	} >"$work/wfp.conf"
	wine "$brokerd" --console --config "$(winpath "$work/wfp.conf")" >"$work/wfp-broker.log" 2>&1 &
	helpers="$helpers $!"
	for _ in $(seq 1 100); do
		run "$wfpbctl" --endpoint "$wfp_pipe" --server-key "$wfp_state\\server.pub" --timeout 2000 ping \
			>/dev/null 2>&1 && break
		sleep 0.2
	done
	if run "$handover_test" "$wfp_pipe" "$wfp_state\\server.pub" --wfp >"$work/wfp-test.out" 2>&1; then
		ok "backend = wfp: a connection WFP did not redirect is accepted without records, Connect's and a UDP Listen's refusals are EOPNOTSUPP, the broker serves on"
	else
		ko "backend = wfp: a connection WFP did not redirect is accepted without records, Connect's and a UDP Listen's refusals are EOPNOTSUPP, the broker serves on"
	fi
	sed 's/^/    /' "$work/wfp-test.out"
fi

if [ "$mode" = wine ]; then
	# A state directory someone else made, that others may write (Wine derives the DACL from the
	# Unix mode: 0777 grants Everyone write): the service refuses it and names it. The owner and
	# key-file cases need facts Wine cannot show: test_secure.
	mkdir -p "$work/planted"
	chmod 777 "$work/planted"
	printf '[service]\nendpoint = \\\\.\\pipe\\wfpbplanted-%s\nstate_dir = %s\n' "$$" "$(winpath "$work/planted")" \
		>"$work/planted.conf"
	planted_refused() {
		local out
		out=$(wine "$brokerd" --console --config "$(winpath "$work/planted.conf")" 2>&1) && return 1
		echo "$out" | grep -q "planted lets S-1-1-0 modify it.*refusing to start" || { echo "    got: $out"; return 1; }
	}
	check "a state directory others may write: the service refuses to start and names it" planted_refused
	# A configuration others may write is judged before a byte of it is read: refused for where it
	# lies (exit 2, the state step), not parsed (which would stop at its garbage, exit 78).
	printf 'not a configuration\n' >"$work/planted-conf.conf"
	chmod 666 "$work/planted-conf.conf"
	wine "$brokerd" --console --config "$(winpath "$work/planted-conf.conf")" >"$work/planted-conf.out" 2>&1
	rc=$?
	check "a configuration others may write is refused before it is read (exit $rc, want 2)" test "$rc" = 2
	# The self-test for real Windows runs to the end under Wine, and reports Wine's refusal of every
	# redirect ioctl (WSAEOPNOTSUPP, 10045) as a result, not a failure.
	selftest_ok() {
		wine "$brokerd" selftest --json "$(winpath "$work/selftest.json")" >"$work/selftest.out" 2>&1 || return 1
		sed 's/^/    /' "$work/selftest.out"
		test "$(grep -c 'WSAIoctl(.*error 10045' "$work/selftest.out")" -eq 6 &&
			grep -q 'pulled socket: DuplicateHandle' "$work/selftest.out" &&
			grep -q 'queries with a filtered token' "$work/selftest.out" &&
			grep -q 'UDP redirect options, filtered token .*IP_WFP_REDIRECT_RECORDS rc' "$work/selftest.out" &&
			grep -q 'getsockopt(SO_ORIGINAL_DST)' "$work/selftest.out" &&
			grep -q 'protected pipe name, filtered token .*CreateNamedPipeW under' "$work/selftest.out" &&
			grep -q 'ioctls without privileges .*SET rc' "$work/selftest.out" &&
			grep -q 'UDP records as control data, this token .*WSASendMsg(records) rc .*WSARecvMsg rc .*control' \
				"$work/selftest.out" &&
			grep -q 'UDP records as control data, filtered token .*WSASendMsg(records) rc' "$work/selftest.out" &&
			grep -q '"os":"Windows .*","elevated":\(true\|false\),"probes":\[' "$work/selftest.json" &&
			test "$(grep -o '"name":' "$work/selftest.json" | wc -l)" -eq 16
	}
	check "wfpbrokerd.exe selftest runs to the end and writes its JSON" selftest_ok
fi

if [ "$mode" = native ]; then
	# The policy with real, distinct, unprivileged uids: identity from SO_PEERCRED.
	as() {
		local uid=$1
		shift
		setpriv --reuid="$uid" --regid=65534 --clear-groups "$wfpbctl" --endpoint "$endpoint" \
			--server-key "$pub_arg" "$@"
	}
	fails_with() { # fails_with WORDS CMD...: the command fails and stderr says WORDS
		local words=$1 out
		shift
		out=$("$@" 2>&1 >/dev/null) && return 1
		echo "$out" | grep -q "$words" || { echo "    got: $out"; return 1; }
	}
	h=$(as 1001 stash 0a0b0c --keep)
	check "app1 (uid 1001) stashes a blob and gets a 16-byte handle" test ${#h} -eq 32
	check "app1 fetches its own blob" test "$(as 1001 fetch "$h")" = 0a0b0c
	check "app2 (uid 1002) cannot fetch app1's handle" fails_with "NOT_FOUND" as 1002 fetch "$h"
	check "app2 cannot release app1's handle" fails_with "NOT_FOUND" as 1002 release "$h"
	check "uid 1003 matches no principal: denied" fails_with "DENIED: stash: no principal matches user 1003" as 1003 stash 01
	check "app1 is not admin: status denied" fails_with "DENIED: status: not granted to principal app1" as 1001 status
	hs=$(as 1001 stash 0102)
	check "a session-lifetime entry goes with its session" fails_with "NOT_FOUND" as 1001 fetch "$hs"
	h2=$(as 1001 stash 02 --keep) && as 1001 stash 03 --keep >/dev/null
	check "app1's fourth entry exceeds max_stash = 3" fails_with "QUOTA" as 1001 stash 04 --keep
	check "app2 is unaffected by app1's quota" eval 'as 1002 stash 05 --keep >/dev/null'
	check "release frees a quota slot" as 1001 release "$h"
	check "app1 can stash again after the release" eval 'as 1001 stash 06 --keep >/dev/null'
	check "a released handle is gone" fails_with "NOT_FOUND" as 1001 fetch "$h"
	check "empty blob is a bad request naming the field" fails_with "BAD_REQUEST: stash.blob: empty" as 1001 stash ""
	big=$(printf '00%.0s' $(seq 1 16385))
	check "a blob over blob_max is a bad request naming the limit" fails_with "BAD_REQUEST: stash.blob: 16385 bytes, the limit is 16384" as 1001 stash "$big"
	check "status (root, admin) counts 4 stash entries" eval '"$wfpbctl" --endpoint "$endpoint" --server-key "$pub_arg" status | grep -qx "stash_entries 4"'
	# An unprivileged wfpb-relay (uid 1004) carries bytes to an echo server and back.
	relay_round_trip "wfpb-relay (uid 1004)" setpriv --reuid=1004 --regid=65534 --clear-groups "$relay"

	# Prometheus' text format: each sample after its HELP and TYPE, names and values well formed,
	# counters named *_total, and the same numbers as the plain status.
	"$wfpbctl" --endpoint "$endpoint" --server-key "$pub_arg" status --prometheus >"$work/metrics.prom"
	prom_ok() {
		awk '
		/^# HELP wfpbroker_[a-z_]+ [^ ]/ { help[$3] = 1; next }
		/^# TYPE wfpbroker_[a-z_]+ (gauge|counter)$/ { if (!help[$3]) exit 1; type[$3] = $4; next }
		/^wfpbroker_[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? [0-9]+$/ {
			name = $1; sub(/\{.*/, "", name)
			if (!(name in type) || seen[name]++) exit 1
			if ((type[name] == "counter") != (name ~ /_total$/)) exit 1
			n++; next }
		{ exit 1 }
		END { exit !(n >= 17) }' "$work/metrics.prom"
	}
	check "wfpbctl status --prometheus is the text exposition format ($(grep -vc '^#' "$work/metrics.prom") samples)" prom_ok
	check "  with the broker's pid and backend, and its records_applied" eval \
		"grep -qx 'wfpbroker_info{backend=\"sim\",pid=\"$pid\"} 1' '$work/metrics.prom' &&
		 grep -qx \"wfpbroker_records_applied_total \$(\"\$wfpbctl\" --endpoint \"\$endpoint\" --server-key \"\$pub_arg\" status | awk '\$1 == \"records_applied\" { print \$2 }')\" '$work/metrics.prom'"
	check "wfpbctl status --json is one JSON object" eval '"$wfpbctl" --endpoint "$endpoint" --server-key "$pub_arg" status --json | grep -q "^{\"backend\":\"sim\",.*\"records_applied\":[0-9]*,\"audit_durable_seq\":[1-9][0-9]*,.*\"audit_broken\":false,.*\"rss_bytes\":[1-9][0-9]*,\"open_handles\":[1-9][0-9]*,\"workers\":1,\"pid\":$pid}$"'
	check "wfpbctl policy check accepts the running policy" eval '"$wfpbctl" policy check "$work/wfpbroker.conf" | grep -q "ok, 6 principals"'
	printf '[principal p]\nuid = 1\nops = fly\n' >"$work/bad-policy.conf"
	check "wfpbctl policy check names the bad line" fails_with "bad-policy.conf:3: \[principal p\]: invalid ops" "$wfpbctl" policy check "$work/bad-policy.conf"
	# The command lines: help on stdout with status 0, a version, strict numbers, distinct exit codes.
	exits() { # exits CODE CMD...: the command exits with CODE
		local want=$1
		shift
		"$@" >"$work/cli.out" 2>"$work/cli.err"
		[ $? -eq "$want" ] || { echo "    exit $?, stderr: $(cat "$work/cli.err")"; return 1; }
	}
	check "wfpbctl --help: usage on stdout, status 0" eval 'exits 0 "$wfpbctl" --help && grep -q "^usage: wfpbctl" "$work/cli.out"'
	check "wfpbrokerd --help: usage on stdout, status 0" eval 'exits 0 "$brokerd" --help && grep -q "^usage: wfpbrokerd" "$work/cli.out"'
	check "wfpb-relay --help: usage on stdout, status 0" eval 'exits 0 "$relay" --help && grep -q "^usage: wfpb-relay" "$work/cli.out"'
	check "wfpbrokerd, wfpbctl and wfpb-relay --version print the version" eval \
		'exits 0 "$brokerd" --version && grep -qx "wfpbrokerd [0-9.]*" "$work/cli.out" && exits 0 "$wfpbctl" --version && grep -qx "wfpbctl [0-9.]*" "$work/cli.out" &&
		 exits 0 "$relay" --version && grep -qx "wfpb-relay [0-9.]* (libwfpb [0-9.]*)" "$work/cli.out"'
	check "wfpbctl --timeout abc: a usage error naming the option" eval \
		'exits 2 "$wfpbctl" --endpoint "$endpoint" --timeout abc ping && grep -q -- "--timeout abc" "$work/cli.err"'
	check "wfpbctl ping --count 2x: a usage error naming the option" eval \
		'exits 2 "$wfpbctl" --endpoint "$endpoint" --server-key "$pub_arg" ping --count 2x && grep -q -- "--count 2x" "$work/cli.err"'
	check "wfpb-relay --max-connections 3x: a usage error naming the option" eval \
		'exits 2 "$relay" --listen 127.0.0.1:0 --max-connections 3x && grep -q -- "--max-connections 3x" "$work/cli.err"'
	check "wfpbrokerd exits 78 (EX_CONFIG) for a configuration it refuses" exits 78 "$brokerd" --config "$work/bad-policy.conf"
	# (valgrind's own lines, "==PID==" and "--PID--", share the file under broker_e2e_valgrind.)
	check "every broker log line has a UTC time and a level" eval "! grep -vE '^(==|--)[0-9]+(==|--)' '$work/broker.log' |
		grep -vqE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]{12}Z wfpbrokerd (info|warning|error): '"
	# Under journald (JOURNAL_STREAM names stderr) a line is the priority prefix and the text, no time.
	: >"$work/journal.log"
	check "under journald a refused configuration is logged as '<3>...' without a timestamp" eval \
		'JOURNAL_STREAM=$(stat -c "%d:%i" "$work/journal.log") "$brokerd" --config "$work/bad-policy.conf" \
		2>>"$work/journal.log"; grep -q "^<3>.*bad-policy.conf" "$work/journal.log" && ! grep -q "Z wfpbrokerd" "$work/journal.log"'
	check "a JOURNAL_STREAM that is not our stderr is ignored" eval \
		'JOURNAL_STREAM=1:1 "$brokerd" --config "$work/bad-policy.conf" 2>"$work/notjournal.log"; grep -q "Z wfpbrokerd error: " "$work/notjournal.log"'

	cp "$work/wfpbroker.conf" "$work/good.conf"
	printf '[service]\nmax_sessions = 8\n[principal x]\nops = admin\n' >"$work/wfpbroker.conf"
	check "Reload op rejects a bad file and says why" fails_with "EINVAL: reload: .*matches nobody.*old policy kept" \
		"$wfpbctl" --endpoint "$endpoint" --server-key "$pub_arg" reload
	check "app1 keeps its grants and entries after the rejected reload" test "$(as 1001 fetch "$h2")" = 02
	cp "$work/good.conf" "$work/wfpbroker.conf"
	check "Reload op applies a good file" eval '"$wfpbctl" --endpoint "$endpoint" --server-key "$pub_arg" reload | grep -q "reloaded: 6 principals"'

	ik_stranger() { "$wfpbctl" --endpoint "$endpoint" --server-key "$pub_arg" --client-key "$work/stranger.key" ping >/dev/null 2>&1; }
	check "unenrolled key refused before reload" eval '! ik_stranger'
	write_conf "[principal stranger]
key = $stranger_hex"
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
			grep -q "another broker" "$work/second.log"
	}
	check "a second broker refuses to steal a live socket" second_refused
	check "first broker still serves after the second tried" "$wfpbctl" --endpoint "$endpoint" --server-key "$pub_arg" ping
	kill -TERM "$pid"
	wait "$pid"
	rc=$?
	pid=
	check "SIGTERM stops the broker with status 0" test $rc -eq 0
	check "the socket is removed on stop" test ! -e "$endpoint"
	if [ -n "$notify_listen" ]; then
		check "sd_notify: READY=1 with a STATUS= naming the endpoint, once listening" \
			grep -q "^READY=1 STATUS=serving $endpoint, backend sim, [0-9]* principals$" "$work/notify.log"
		check "sd_notify: RELOADING=1 with MONOTONIC_USEC= before each SIGHUP reload, READY=1 after" \
			test "$(grep -c '^RELOADING=1 MONOTONIC_USEC=[0-9]* STATUS=reloading ' "$work/notify.log")" -eq 2 -a \
			"$(grep -c '^READY=1' "$work/notify.log")" -eq 3
		check "sd_notify: a refused reload says so in STATUS=" \
			grep -q '^STATUS=serving the previous configuration: .*wfpbroker.conf line 3 was refused$' "$work/notify.log"
		check "sd_notify: STOPPING=1 last" sh -c "tail -n 1 '$work/notify.log' | grep -q '^STOPPING=1 STATUS=stopping'"
		cat "$work/notify.log"
	fi
fi

summary

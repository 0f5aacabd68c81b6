#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# relp_e2e.sh BROKERD WFPBCTL ACK_CLIENT WORKDIR
#
# The fleet's audit path with the real parts: a broker under load, the follower
# (wfpbctl audit export --json --follow --relp) and an rsyslog with imrelp on loopback,
# its own config and spool under WORKDIR, writing each message as received. While records
# flow: the follower killed with SIGKILL and restarted, rsyslog stopped for a few seconds
# and started again, the broker killed with SIGKILL and restarted, the log rotating. Then
# verify-collected over rsyslog's file finds every record of the host's log, the chain
# whole; a deleted record is a gap with its seq, an altered one a break; a second broker
# (its own state and key) shipping to the same rsyslog is kept apart; TLS with a pinned CA
# is accepted and a collector certified by another CA refused. Everything it starts stops.
# Ends with "N passed, M failed".
set -u
brokerd=$1 wfpbctl=$2 ack=$3 work=$4
. "$(dirname "$0")/../check.sh"
. "$(dirname "$0")/../rsyslog.sh"

work=$(workdir "$work")
rs_pid= loadpid= pids=()
cleanup() {
	[ -n "$loadpid" ] && kill "$loadpid" 2>/dev/null
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
	[ -n "$rs_pid" ] && kill -9 "$rs_pid" 2>/dev/null
	true
}
trap cleanup EXIT

# --- the collector: rsyslog, imrelp plain and TLS, omfile of the messages as received --------
mkdir -p "$work/rs" "$work/pki" "$work/pki-other"
# A CA, the collector's certificate from it (for 127.0.0.1), a client certificate; another CA.
pki() {
	openssl req -x509 -newkey ed25519 -nodes -keyout "$1/ca.key" -out "$1/ca.pem" -subj "/CN=$2" -days 2 &&
	openssl req -newkey ed25519 -nodes -keyout "$1/srv.key" -out "$1/srv.csr" -subj "/CN=collector" &&
	printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$1/ext" &&
	openssl x509 -req -in "$1/srv.csr" -CA "$1/ca.pem" -CAkey "$1/ca.key" -CAcreateserial -out "$1/srv.pem" \
		-days 2 -extfile "$1/ext" &&
	openssl req -newkey ed25519 -nodes -keyout "$1/host.key" -out "$1/host.csr" -subj "/CN=host" &&
	openssl x509 -req -in "$1/host.csr" -CA "$1/ca.pem" -CAkey "$1/ca.key" -CAcreateserial -out "$1/host.pem" -days 2
} 2>/dev/null
check "test certificates made" eval 'pki "$work/pki" "fleet CA" && pki "$work/pki-other" "another CA"'
# The collector acknowledges a message only once it is in the file: the ruleset's queue is
# direct (imrelp's answer waits for the action), as docs/AUDIT.md tells a site to configure it.
rs_conf() { cat >"$work/rs/rsyslog.conf" <<CONF
global(workDirectory="$work/rs" maxMessageSize="256k")
module(load="imrelp")
module(load="mmpstrucdata")
input(type="imrelp" address="127.0.0.1" port="$port" ruleset="wfpbroker")
input(type="imrelp" address="127.0.0.1" port="$tls_port" ruleset="wfpbroker" tls="on"
      tls.caCert="$work/pki/ca.pem" tls.myCert="$work/pki/srv.pem" tls.myPrivKey="$work/pki/srv.key"
      tls.authMode="certvalid")
template(name="wfpbroker-line" type="string" string="%msg%\n")
template(name="sd" type="string" string="%structured-data%\n")
template(name="wfpbroker-by-key" type="string"
         string="$work/by-key/%\$!rfc5424-sd!wfpbroker@32473!audit_key:::secpath-replace%.jsonl")
ruleset(name="wfpbroker" queue.type="Direct") {
    action(type="omfile" file="$work/collected.jsonl" template="wfpbroker-line")
    action(type="omfile" file="$work/collected-sd.txt" template="sd")
    action(type="mmpstrucdata")
    action(type="omfile" dynaFile="wfpbroker-by-key" template="wfpbroker-line")
}
CONF
}
rs_start() { rsyslog_start "$work/rs/rsyslog.conf" "$port" "$tls_port"; }
rs_stop() { rsyslog_stop; }
port= tls_port=
rsyslog_up "$work/rs/rsyslog.conf" rs_conf port tls_port
check "rsyslog starts with imrelp on 127.0.0.1:$port (and TLS on :$tls_port)" test -n "$rs_pid"

# --- a broker: frequent checkpoints; A's log in small rotated files, B's in one file ---------
# conf DIR [ROTATION]: config and state under DIR.
conf() {
	mkdir -p "$1/run" "$1/state"
	cat >"$1/b.conf" <<CONF
[service]
endpoint = $1/run/b.sock
state_dir = $1/state
backend = sim
checkpoint_every = 25
${2:-}
audit_keep_files = 0

[principal root]
uid = 0
ops = listen admin
listen = 127.0.0.1/32:*
CONF
}
declare -A bpid
bstart() {
	"$brokerd" --config "$1/b.conf" >>"$1/broker.log" 2>&1 &
	bpid[$1]=$!
	pids+=("$!")
	# Up to 30 s: a restart verifies the log first, slowly under the sanitizers.
	for _ in $(seq 1 1500); do
		"$wfpbctl" --endpoint "$1/run/b.sock" --server-key "$1/state/server.pub" --timeout 500 ping \
			>/dev/null 2>&1 && return 0
		kill -0 "${bpid[$1]}" 2>/dev/null || { tail -n 5 "$1/broker.log"; return 1; }
		sleep 0.02
	done
	return 1
}
# Load: durably audited Listen+Release pairs, again and again (across broker restarts).
load() { while [ ! -e "$1/stop-load" ]; do "$ack" "$1/run/b.sock" "$1/state/server.pub" "$1/acked.txt" 40 \
	>/dev/null 2>&1 || sleep 0.05; done; }
declare -A fpid
# follow DIR [ARGS...]: the follower of DIR's log to the collector.
follow() {
	local d=$1; shift
	"$wfpbctl" audit export --json --follow --cursor "$d/cursor" --poll-ms 50 --stats "$@" "$d/state/audit.log" \
		>>"$d/follower.out" 2>>"$d/follower.log" &
	fpid[$d]=$!
	pids+=("$!")
}
follow_b() { follow "$B" --relp "127.0.0.1:$tls_port" --relp-ca "$work/pki/ca.pem" --relp-cert "$work/pki/host.pem" \
	--relp-key "$work/pki/host.key"; }
last_seq() { "$wfpbctl" audit export --json "$1/state/audit.log" 2>/dev/null | tail -n 1 | sed -n 's/.*"seq":\([0-9]*\),.*/\1/p'; }
# caught_up DIR: the cursor reaches the log's last record within 40 s.
caught_up() {
	local want
	want=$(last_seq "$1")
	for _ in $(seq 1 400); do [ -n "$want" ] && [ "$(cat "$1/cursor" 2>/dev/null)" = "$want" ] && return 0; sleep 0.1; done
	echo "    cursor $(cat "$1/cursor" 2>/dev/null), log ends at $want; the follower said:"
	tail -n 5 "$1/follower.log" | sed 's/^/    /'
	return 1
}

A=$work/a B=$work/b
conf "$A" "audit_max_kib = 48"
conf "$B"
check "broker A starts" bstart "$A"
check "broker B starts (another state dir, its own audit key)" bstart "$B"
load "$A" & loadpid=$!
( load "$B" ) & pids+=("$!")
follow "$A" --relp "127.0.0.1:$port"
follow_b
sleep 1.5

# While records flow: the follower dies without a word and comes back.
kill -9 "${fpid[$A]}"; wait "${fpid[$A]}" 2>/dev/null
sleep 0.5
follow "$A" --relp "127.0.0.1:$port"
sleep 1
# The collector goes away for a few seconds: nothing is acknowledged, nothing is lost.
rs_stop
check "rsyslog is down" eval '! listening "$port"'
sleep 3
cursor_down=$(cat "$A/cursor" 2>/dev/null)
check "rsyslog starts again" rs_start
sleep 1.5
# The broker dies mid-load and restarts; its log repairs itself and the follower goes on.
kill -9 "${bpid[$A]}"; wait "${bpid[$A]}" 2>/dev/null
check "broker A restarts after SIGKILL" bstart "$A"
# B's follower too, once B's log is past 2 MiB: it resumes in the middle of a log larger than
# one poll reads (1 MiB).
for _ in $(seq 1 300); do [ "$(stat -c %s "$B/state/audit.log")" -gt 2097152 ] && break; sleep 0.1; done
kill -9 "${fpid[$B]}"; wait "${fpid[$B]}" 2>/dev/null
b_size=$(stat -c %s "$B/state/audit.log") b_cursor=$(cat "$B/cursor")
follow_b
sleep 1.5
touch "$A/stop-load" "$B/stop-load"
wait "$loadpid" 2>/dev/null; loadpid=
# The brokers stop (their last records: the stop and its checkpoint); the followers ship those too.
kill -TERM "${bpid[$A]}" "${bpid[$B]}"; wait "${bpid[$A]}" "${bpid[$B]}" 2>/dev/null
check "follower A caught up with its log" caught_up "$A"
check "follower B (TLS) caught up with its log, resumed at seq $b_cursor of one file of $b_size bytes" eval \
	'test "$b_size" -gt 2097152 && caught_up "$B"'
check "the follower said it lost the collector and sent again from its cursor" \
	grep -q "sending again from seq\|trying again in" "$A/follower.log"
# A follower stopped with SIGTERM closes politely and reports.
kill -TERM "${fpid[$A]}" "${fpid[$B]}"; wait "${fpid[$A]}" "${fpid[$B]}" 2>/dev/null
check "the stopped follower reports what was acknowledged: $(grep -m1 '^relp:' "$A/follower.log" | tail -n 1)" \
	grep -q '^relp: [0-9]* records acknowledged' "$A/follower.log"
rs_stop

last_a=$(last_seq "$A") last_b=$(last_seq "$B")
rot=$(ls "$A/state/" | grep -c '^audit\.log\.[0-9]*$')
check "the log rotated $rot times while the follower shipped it" test "$rot" -ge 2
check "records reached rsyslog after it came back (cursor $cursor_down while down, $last_a at the end)" \
	test "${cursor_down:-0}" -lt "$last_a"
check "nothing went to standard output (the records went to the collector)" test ! -s "$A/follower.out"
check "each message carries its seq in structured data" grep -q "^\[wfpbroker@32473 seq=\"$last_a\" audit_key=\"" \
	"$work/collected-sd.txt"

mkdir -p "$work/keys"
cp "$A/state/audit.pub" "$work/keys/endpoint-a.pub"
cp "$B/state/audit.pub" "$work/keys/endpoint-b.pub"
"$wfpbctl" audit verify-collected "$work/collected.jsonl" --keys "$work/keys" >"$work/vc.out" 2>&1
rc=$?
sed 's/^/    /' "$work/vc.out"
check "verify-collected over rsyslog's file: host A whole, every record 1..$last_a (exit $rc)" \
	grep -q "^  whole: $last_a records ([0-9]* lines), seq 1..$last_a;" "$work/vc.out"
check "  host B (over TLS) whole, every record 1..$last_b, kept apart from A" \
	grep -q "^  whole: $last_b records ([0-9]* lines), seq 1..$last_b;" "$work/vc.out"
check "  and the verdict is clean (exit 0)" test "$rc" -eq 0
# A centre that outgrows one machine: rsyslog splits the stream into one file per audit key
# (dynaFile, docs/AUDIT.md), and the parts are verified in parallel into one report.
"$wfpbctl" audit verify-collected "$work"/by-key/*.jsonl --keys "$work/keys" --jobs 2 >"$work/vc-parts.out" 2>&1
rc=$?
check "rsyslog split the stream into one file per key ($(ls "$work/by-key" | tr '\n' ' '))" \
	test "$(ls "$work/by-key" | wc -l)" -eq 2
check "  verified in 2 parts: A and B whole, as from the one file, one report (exit $rc)" eval \
	"test $rc -eq 0 && grep -q '^  whole: $last_a records ([0-9]* lines), seq 1..$last_a;' '$work/vc-parts.out' &&
	 grep -q '^  whole: $last_b records ([0-9]* lines), seq 1..$last_b;' '$work/vc-parts.out'"

# Damage at the centre. Every copy of one record deleted: a gap that names its seq.
gap=$((last_a / 2))
key_a=$("$wfpbctl" audit export --json "$A/state/audit.log" | head -n 1 | sed -n 's/.*"audit_key":"\([0-9a-f]*\)".*/\1/p')
grep -v "\"audit_key\":\"$key_a\",\"seq\":$gap," "$work/collected.jsonl" >"$work/gap.jsonl"
"$wfpbctl" audit verify-collected "$work/gap.jsonl" --keys "$work/keys" >"$work/vc-gap.out" 2>&1
rc=$?
check "a record deleted from the collected file is a gap naming seq $gap (exit $rc)" eval \
	"test $rc -eq 1 && grep -q 'gap: seq $gap..$gap missing' '$work/vc-gap.out'"
# Every copy of one record altered in its bytes (a digit of the prev_hash it holds): a break.
awk -v k="\"audit_key\":\"$key_a\",\"seq\":$gap," 'index($0, k) { p = index($0, "\"prev_hash\":\"");
	ph = substr($0, p + 13, 64); n = index($0, "\"record\":\""); rec = substr($0, n + 10); q = index(rec, ph);
	c = substr(rec, q, 1); rec = substr(rec, 1, q - 1) (c == "0" ? "1" : "0") substr(rec, q + 1);
	$0 = substr($0, 1, n + 9) rec } { print }' "$work/collected.jsonl" >"$work/break.jsonl"
"$wfpbctl" audit verify-collected "$work/break.jsonl" --keys "$work/keys" >"$work/vc-break.out" 2>&1
rc=$?
check "a record altered in the collected file is a break (exit $rc): $(grep -m1 'break' "$work/vc-break.out" | sed 's/^ *//')" \
	eval "test $rc -eq 1 && grep -qE 'break: seq ($gap|$((gap + 1))) ' '$work/vc-break.out'"
# A record cut short on the way no longer decodes: the line is damaged, and its seq a gap.
sed "/\"audit_key\":\"$key_a\",\"seq\":$gap,/s/\"}\$/\"}/; /\"audit_key\":\"$key_a\",\"seq\":$gap,/s/..\"}\$/\"}/" \
	"$work/collected.jsonl" >"$work/cut.jsonl"
"$wfpbctl" audit verify-collected "$work/cut.jsonl" --keys "$work/keys" >"$work/vc-cut.out" 2>&1
rc=$?
check "a record cut short is a damaged line and a gap (exit $rc): $(grep -m1 'damaged' "$work/vc-cut.out")" \
	eval "test $rc -eq 1 && grep -q 'lines carry a record or key that does not decode (damaged)' '$work/vc-cut.out' &&
	grep -q 'gap: seq $gap..$gap missing' '$work/vc-cut.out'"

# TLS: a collector whose certificate comes from another CA is refused, and nothing is sent.
conf "$work/c"
check "rsyslog starts again for the TLS check" rs_start
"$wfpbctl" audit export --json --follow --cursor "$work/c/cursor" --relp "127.0.0.1:$tls_port" \
	--relp-ca "$work/pki-other/ca.pem" --relp-cert "$work/pki/host.pem" --relp-key "$work/pki/host.key" \
	"$A/state/audit.log" >/dev/null 2>"$work/c/follower.log" &
bad=$!; pids+=("$bad")
sleep 2
kill -TERM "$bad"; wait "$bad" 2>/dev/null
rs_stop
check "a collector certified by another CA is refused: $(head -n 1 "$work/c/follower.log" | cut -c1-120)" \
	grep -q "certificate.*NOT trusted\|issuer is unknown" "$work/c/follower.log"
check "  and no cursor was written (nothing acknowledged)" test ! -e "$work/c/cursor"

# No broker, follower, load or rsyslog of this test is still running (before the trap's cleanup).
sleep 0.2
running="^[^ ]*(wfpbrokerd|wfpbctl|ack-client|rsyslogd) .*$work"
check "nothing left running: $(pgrep -af -- "$running" | head -n 3 | tr '\n' ';')" eval '! pgrep -f -- "$running" >/dev/null'
summary

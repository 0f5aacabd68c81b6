#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# audit_e2e.sh BROKERD WFPBCTL ACK_CLIENT WORKDIR JSON_LINES FORGE [ITERATIONS]
#
# 1. Crash consistency: SIGKILL the broker at random moments while a client
#    makes durably audited requests, restart it each time (it verifies and
#    repairs the log), and prove that every request the client saw
#    acknowledged has its record and that the whole chain verifies.
# 2. Full disk: the log on a tiny tmpfs; when it fills, effectful requests
#    get UNAVAILABLE, the broker stays up and says so in its log, and it
#    recovers by itself when space returns.
# 3.-5. tail -f across rotations, the anchor, retention.
# 6. Export: valid JSON whatever bytes a record holds, and a non-zero exit for a
#    log that does not verify.
# 7. verify-collected over two brokers' lines, and each kind of damage it must report.
# 8. The follower (export --follow --cursor) through its own SIGKILL, rotations and a broker
#    restart: every record reaches its output, the chain whole.
# Ends with "N passed, M failed".
set -u
brokerd=$1 wfpbctl=$2 ack=$3 work=$4 json_lines=$5 forge=$6 iterations=${7:-200}
. "$(dirname "$0")/../check.sh"

rm -rf "$work"
mkdir -p "$work"
work=$(cd "$work" && pwd)
pid= disk=
cleanup() {
	[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
	[ -n "$disk" ] && umount "$disk" 2>/dev/null
	true
}
trap cleanup EXIT

endpoint=$work/run/b.sock
pub=$work/state/server.pub
write_conf() {
	cat >"$work/b.conf" <<CONF
[service]
endpoint = $endpoint
state_dir = $work/state
backend = sim
checkpoint_every = 50
$1

[principal root]
uid = 0
ops = listen admin
listen = 127.0.0.1/32:*
CONF
}
ctl() { "$wfpbctl" --endpoint "$endpoint" --server-key "$pub" "$@"; }
start() {
	"$brokerd" --config "$work/b.conf" >>"$work/broker.log" 2>&1 &
	pid=$!
	for _ in $(seq 1 300); do
		ctl --timeout 500 ping >/dev/null 2>&1 && return 0
		kill -0 "$pid" 2>/dev/null || return 1
		sleep 0.01
	done
	return 1
}

# --- 1. crash consistency (with rotation every 512 KiB) -----------------------
# Every rotated file is kept (audit_keep_files = 0): retention would prune the oldest on a fast
# machine, and their records with them, which is retention's job and not a loss.
write_conf "audit_max_kib = 512
audit_keep_files = 0"
: >"$work/acked.txt"
starts=0
for i in $(seq 1 "$iterations"); do
	if ! start; then
		ko "broker restarts after SIGKILL (iteration $i)"
		tail -n 5 "$work/broker.log"
		break
	fi
	starts=$((starts + 1))
	"$ack" "$endpoint" "$pub" "$work/acked.txt" 2>/dev/null &
	client=$!
	sleep "0.0$((RANDOM % 60 + 5))"
	kill -9 "$pid"
	wait "$pid" 2>/dev/null
	pid=
	wait "$client" 2>/dev/null
done
check "broker restarted after each of $iterations SIGKILLs" test "$starts" -eq "$iterations"
start && ctl status >"$work/status.txt" && kill -TERM "$pid" && wait "$pid"
pid=
acked=$(wc -l <"$work/acked.txt")
echo "    $acked requests acknowledged across $iterations crashes"
check "clients saw requests acknowledged" test "$acked" -gt "$iterations"
# Rotated files, oldest first, then the current one: verified as one chain.
logs=$(ls "$work"/state/audit.log.* 2>/dev/null | sort -t. -k3 -n; echo "$work/state/audit.log")
echo "    $(echo "$logs" | wc -l) log files after rotation"
check "the log rotated while the broker was being killed" test "$(echo "$logs" | wc -l)" -gt 1
# shellcheck disable=SC2086
check "the whole chain verifies across every file (links, chain, signatures)" \
	"$wfpbctl" audit verify $logs --pubkey "$work/state/audit.pub"
for f in $logs; do "$wfpbctl" audit export --json "$f"; done |
	sed -n 's/.*"op":"listen","principal".*"addresses":\["127.0.0.1:\([0-9]*\)"\].*"status":"OK".*/\1/p' |
	sort -u >"$work/recorded.txt"
sort -u "$work/acked.txt" >"$work/acked.sorted"
missing=$(comm -23 "$work/acked.sorted" "$work/recorded.txt" | wc -l)
check "every acknowledged request has its record ($missing missing)" test "$missing" -eq 0
grep -E '^audit_(commits|max_batch)' "$work/status.txt" | sed 's/^/    last run: /'

# --- 2. full disk -----------------------------------------------------------
disk=$work/disk
mkdir -p "$disk"
# (8 MiB: what the broker queues while the disk is full, 4 MiB at most, must fit when space returns)
if ! mount -t tmpfs -o size=8m tmpfs "$disk"; then
	ko "mount a small tmpfs for the full-disk test (needs root and mount rights)"
	disk=
	summary
	exit 1
fi
write_conf "audit_log = $disk/audit.log"
: >"$work/broker.log"
check "broker starts with its log on the small disk" start
check "an effectful request succeeds while there is space" "$ack" "$endpoint" "$pub" "$work/acked2.txt" 1
dd if=/dev/zero of="$disk/filler" bs=4k 2>/dev/null
# The log's last page may still take a few records; go on until one cannot be written.
for _ in $(seq 1 200); do
	"$ack" "$endpoint" "$pub" "$work/acked2.txt" 1 >/dev/null 2>&1 || break
done
# A failed commit closes the session whose answer it held; small records may still fit in the
# log's last page for a while, so ask until the broker refuses up front.
for _ in $(seq 1 50); do
	out=$("$ack" "$endpoint" "$pub" "$work/acked2.txt" 1 2>&1) && continue
	echo "$out" | grep -q UNAVAILABLE && break
done
echo "    after the disk filled: $out"
check "with the disk full, effectful requests get UNAVAILABLE" eval 'echo "$out" | grep -q "UNAVAILABLE: listen: the audit log cannot be written"'
check "the broker is still up and answers" ctl ping
check "status reports the log as broken" eval 'ctl status | grep -qx "audit_broken 1"'
check "the broker says so in its log" grep -q "audit log cannot be written" "$work/broker.log"
# Requests without effect (Ping) of a principal while the log cannot be written: each is recorded
# or refused, never answered OK unrecorded; past what the queue holds they are refused UNAVAILABLE.
"$ack" "$endpoint" "$pub" "$work/pings.txt" 60000 --ping
read -r _ ping_pid _ ping_ok _ ping_unavailable _ ping_other <"$work/pings.txt"
check "60000 Pings while the log cannot be written: $ping_ok OK, $ping_unavailable refused UNAVAILABLE ($(sed -n 2p "$work/pings.txt"))" \
	eval 'test "$ping_unavailable" -gt 0 && test $((ping_ok + ping_unavailable + ping_other)) -eq 60000 &&
	 sed -n 2p "$work/pings.txt" | grep -q "audit log cannot be written"'
# The queue keeps a reserve for an administrator's Status: the one question whose answer says
# what is wrong still gets one, recorded like any other, while a principal's Ping is refused.
check "with the queue full, an administrator's status still answers ($(ctl status 2>&1 | grep -m1 'audit_broken\|UNAVAILABLE'))" \
	eval 'ctl status | grep -qx "audit_broken 1"'
"$ack" "$endpoint" "$pub" "$work/pings-after.txt" 1 --ping
check "  while a Ping is still refused: $(head -n 1 "$work/pings-after.txt")" \
	eval 'head -n 1 "$work/pings-after.txt" | grep -q "ok 0 unavailable 1"'

# While it is broken the broker retries with back-off (up to 5 s apart), not at every turn of its loop.
sleep 2
check "a broken log is reported once, not at every retry ($(grep -c 'audit log cannot be written' "$work/broker.log") lines)" \
	test "$(grep -c 'audit log cannot be written' "$work/broker.log")" -eq 1
rm -f "$disk/filler"
recovered=0
for _ in $(seq 1 40); do
	if "$ack" "$endpoint" "$pub" "$work/acked2.txt" 1 >"$work/ack2.out" 2>&1; then recovered=1; break; fi
	sleep 0.25
done
check "when space returns, effectful requests work again" test $recovered -eq 1
check "the recovery is reported once" test "$(grep -c 'audit log written again' "$work/broker.log")" -eq 1
check "status no longer reports the log as broken" eval 'ctl status | grep -qx "audit_broken 0"'
check "status shows the records the broker could not write since it started ($(ctl status | grep audit_lost))" \
	eval 'ctl status | grep -q "^audit_lost [1-9]"'
kill -TERM "$pid"
wait "$pid"
pid=
"$wfpbctl" audit verify "$disk/audit.log" --pubkey "$work/state/audit.pub" >"$work/verify2.out" 2>&1
rc=$?
check "the log written around the full disk does not verify as if complete: $(cat "$work/verify2.out") (exit $rc)" \
	eval 'test $rc -eq 1 && grep -q "records were lost before it" "$work/verify2.out"'
ping_recorded=$("$wfpbctl" audit export --json "$disk/audit.log" | grep -c "\"op\":\"ping\",\"principal\":{[^}]*\"pid\":$ping_pid,.*\"status\":\"OK\"")
check "every Ping answered OK has its record ($ping_recorded of $ping_ok)" test "$ping_recorded" -eq "$ping_ok"
"$wfpbctl" audit export --json "$disk/audit.log" |
	sed -n 's/.*"op":"listen","principal".*"addresses":\["127.0.0.1:\([0-9]*\)"\].*"status":"OK".*/\1/p' |
	sort -u >"$work/recorded2.txt"
missing=$(sort -u "$work/acked2.txt" | comm -23 - "$work/recorded2.txt" | wc -l)
check "every request acknowledged around the full disk has its record ($missing missing)" test "$missing" -eq 0
umount "$disk" && disk=

# --- 3. audit tail -f across rotations ------------------------------------------
# The log rotates every few records while `audit tail -f` follows it: it must print every
# record once, in order, across each rotated file, and never read past a file it had open.
rm -rf "$work/state/audit.log"*
write_conf "audit_max_kib = 4
audit_keep_files = 0
checkpoint_every = 1000"
check "broker starts with a log that rotates every 4 KiB" start
"$wfpbctl" audit tail -f -n 1000 "$work/state/audit.log" >"$work/tail.out" 2>"$work/tail.err" &
tailer=$!
"$ack" "$endpoint" "$pub" "$work/acked3.txt" 300 >/dev/null 2>&1
sleep 2
tail_alive=0
kill -0 "$tailer" 2>/dev/null && tail_alive=1
kill "$tailer" 2>/dev/null
wait "$tailer" 2>/dev/null
rotations=$(ls "$work/state/" | grep -c '^audit\.log\.[0-9]*$')
check "the log rotated while tail -f followed it ($rotations rotated files)" test "$rotations" -ge 3
check "tail -f is still running after the rotations" test "$tail_alive" -eq 1
last=$("$wfpbctl" audit export --json "$work/state/audit.log" | tail -n 1 | sed -n 's/.*"seq":\([0-9]*\),.*/\1/p')
first=$(head -n 1 "$work/tail.out" | cut -d' ' -f1)
seqs_ok() {
	awk -v first="$first" -v last="$last" 'NR == 1 { want = first } $1 != want { print "    line " NR ": seq " $1 ", expected " want; bad = 1; exit 1 } { want++ } END { if (!bad && want != last + 1) { print "    ends at " want - 1 ", the log at " last; exit 1 } }' "$work/tail.out"
}
check "tail -f printed every record from $first to $last once, in order" seqs_ok
kill -TERM "$pid"
wait "$pid"
pid=

# --- 5. the anchor outside the file ----------------------------------------------
# A log cut back to an earlier checkpoint verifies on its own; the anchor the broker reported
# (its stderr here, syslog and the Event Log in production) tells it from the complete one.
rm -rf "$work/state/audit.log"*
write_conf "checkpoint_every = 20"
: >"$work/broker.log"
check "broker starts for the anchor test" start
"$ack" "$endpoint" "$pub" "$work/acked5.txt" 30 >/dev/null 2>&1
kill -TERM "$pid"
wait "$pid"
pid=
cp "$work/state/audit.log" "$work/cut.log"
check "broker restarts on the same log" start
"$ack" "$endpoint" "$pub" "$work/acked5.txt" 30 >/dev/null 2>&1
kill -TERM "$pid"
wait "$pid"
pid=
anchor=$(sed -n 's/.*audit anchor \([0-9]*:[0-9a-f]*\).*/\1/p' "$work/broker.log" | tail -n 1)
check "the broker reported an anchor ($anchor)" test -n "$anchor"
check "the earlier log, cut at a checkpoint, verifies on its own" \
	"$wfpbctl" audit verify "$work/cut.log" --pubkey "$work/state/audit.pub"
expect_fails() {
	local out
	out=$("$wfpbctl" audit verify "$work/cut.log" --pubkey "$work/state/audit.pub" --expect "$anchor") && return 1
	echo "$out" | grep -q "before the anchor" || { echo "    got: $out"; return 1; }
}
check "with the anchor it fails: records were cut off the end" expect_fails
check "the whole log verifies with the anchor" \
	"$wfpbctl" audit verify "$work/state/audit.log" --pubkey "$work/state/audit.pub" --expect "$anchor"

# --- 4. retention of rotated files ----------------------------------------------
rm -rf "$work/state/audit.log"*
write_conf "audit_max_kib = 4
audit_keep_files = 3"
check "broker starts keeping 3 rotated files" start
"$ack" "$endpoint" "$pub" "$work/acked4.txt" 200 >/dev/null 2>&1
kill -TERM "$pid"
wait "$pid"
pid=
kept=$(ls "$work/state/" | grep -c '^audit\.log\.[0-9]*$')
check "only the 3 newest rotated files are kept ($kept there)" test "$kept" -eq 3
# shellcheck disable=SC2012
set -- $(ls "$work/state/" | grep '^audit\.log\.[0-9]*$' | sort -t. -k3 -n | sed "s|^|$work/state/|") "$work/state/audit.log"
check "what retention kept still verifies, from the first kept file's continuation on" \
	"$wfpbctl" audit verify "$@" --pubkey "$work/state/audit.pub"

# --- 6. export: valid JSON whatever the bytes, and a verdict ---------------------
rm -rf "$work/state/audit.log"*
write_conf "checkpoint_every = 1000"
check "broker starts for the export test" start
# A client whose path is not UTF-8 (a Latin-1 e-acute): its image goes into the record as it is.
odd=$work/caf$'\xe9'
mkdir -p "$odd"
cp "$wfpbctl" "$odd/wfpbctl"
"$odd/wfpbctl" --endpoint "$endpoint" --server-key "$pub" ping >/dev/null 2>&1
kill -TERM "$pid"
wait "$pid"
pid=
"$wfpbctl" audit export --json "$work/state/audit.log" --pubkey "$work/state/audit.pub" >"$work/export.json" \
	2>"$work/export.err"
rc=$?
check "export of an intact log exits 0" test $rc -eq 0
check "every exported line is valid JSON though an image path is not UTF-8 ($("$json_lines" <"$work/export.json"))" \
	sh -c "'$json_lines' <'$work/export.json' >/dev/null"
odd_hex=$(printf '%s' "$odd/wfpbctl" | od -An -tx1 | tr -d ' \n')
check "the image's exact bytes travel as image_hex" grep -q "\"image_hex\":\"$odd_hex\"" "$work/export.json"
# What a collector needs besides the fields: the host, the audit key's fingerprint, an RFC 3339
# time, and the record's exact bytes.
first=$(head -n 1 "$work/export.json")
rec=$(printf '%s' "$first" | sed -n 's/.*"record":"\([0-9a-f]*\)".*/\1/p')
file_hex=$(head -c $(( ${#rec} / 2 )) "$work/state/audit.log" | od -An -tx1 -v | tr -d ' \n')
check "each line carries its record's exact bytes (\"record\", ${#rec} hex digits)" test -n "$rec" -a "$rec" = "$file_hex"
key_fp=$(printf "$(tr -d '\n' <"$work/state/audit.pub" | sed 's/../\\x&/g')" | b2sum -l 256 | cut -d' ' -f1)
check "and the host, the audit key's BLAKE2b-256 fingerprint and an RFC 3339 time" eval \
	"printf '%s' '$first' | grep -q '\"host\":\"$(hostname)\"' &&
	 printf '%s' '$first' | grep -q '\"audit_key\":\"$key_fp\"' &&
	 printf '%s' '$first' | grep -qE '\"time\":\"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z\"'"
check "and the user's name beside the uid it resolves (root)" grep -q '"user":"0","user_name":"root"' "$work/export.json"
# One byte of that record changed in the file: the chain no longer verifies.
cp "$work/state/audit.log" "$work/tampered.log"
at=$(grep -boa 'wfpbctl' "$work/tampered.log" | head -n 1 | cut -d: -f1)
printf 'W' | dd of="$work/tampered.log" bs=1 seek="$at" conv=notrunc 2>/dev/null
"$wfpbctl" audit export --json "$work/tampered.log" >"$work/tampered.json" 2>"$work/tampered.err"
rc=$?
check "export of a tampered log exits 1 and says where ($(cat "$work/tampered.err"))" \
	eval "test $rc -eq 1 && grep -q 'does not verify at seq' '$work/tampered.err'"

# --- 7. at the centre: verify-collected over two hosts' lines ----------------------
# Two brokers, each its own state and audit key; their exported lines interleaved and partly
# repeated, as a collector stores them; the keys in a directory under names of the centre's.
rm -rf "$work/state/audit.log"* "$work/second" "$work/keys"
mkdir -p "$work/second/run" "$work/second/state" "$work/keys"
write_conf "checkpoint_every = 7"
check "first broker starts for the fleet test" start
"$ack" "$endpoint" "$pub" "$work/acked7.txt" 20 >/dev/null 2>&1
kill -TERM "$pid"; wait "$pid"; pid=
sed -e "s|$work/run/b.sock|$work/second/run/b.sock|" -e "s|$work/state|$work/second/state|" "$work/b.conf" >"$work/second/b.conf"
"$brokerd" --config "$work/second/b.conf" >>"$work/broker.log" 2>&1 &
pid=$!
for _ in $(seq 1 300); do "$wfpbctl" --endpoint "$work/second/run/b.sock" --server-key "$work/second/state/server.pub" \
	--timeout 500 ping >/dev/null 2>&1 && break; sleep 0.01; done
"$ack" "$work/second/run/b.sock" "$work/second/state/server.pub" "$work/acked7b.txt" 30 >/dev/null 2>&1
kill -TERM "$pid"; wait "$pid"; pid=
cp "$work/state/audit.pub" "$work/keys/host-a.pub"
cp "$work/second/state/audit.pub" "$work/keys/some-other-name.pub"
"$wfpbctl" audit export --json "$work/state/audit.log" >"$work/a.jsonl"
"$wfpbctl" audit export --json "$work/second/state/audit.log" >"$work/b.jsonl"
paste -d '\n' "$work/a.jsonl" "$work/b.jsonl" | grep . >"$work/collected.jsonl"
head -n 5 "$work/b.jsonl" >>"$work/collected.jsonl"	# a shipper that sent some lines twice
na=$(wc -l <"$work/a.jsonl") nb=$(wc -l <"$work/b.jsonl")
"$wfpbctl" audit verify-collected "$work/collected.jsonl" --keys "$work/keys" >"$work/vc.out" 2>&1
rc=$?
sed 's/^/    /' "$work/vc.out"
check "verify-collected: both hosts whole, duplicates folded ($na and $nb records)" eval \
	"test $rc -eq 0 && test \$(grep -c '^  whole: ' '$work/vc.out') -eq 2 &&
	 grep -q '^  whole: $na records' '$work/vc.out' && grep -q '^  whole: $nb records' '$work/vc.out'"
"$wfpbctl" audit verify-collected "$work/collected.jsonl" --keys "$work/keys" --json >"$work/vc.json"
check "  and --json is one valid JSON object" sh -c "'$json_lines' <'$work/vc.json' >/dev/null"
# A line deleted: a gap with its seq. A record's bytes changed: a break. A readable field changed: altered.
grep -v '"seq":5,' "$work/collected.jsonl" >"$work/gap.jsonl"
"$wfpbctl" audit verify-collected "$work/gap.jsonl" --keys "$work/keys" >"$work/vc-gap.out" 2>&1
rc=$?
check "a deleted line is a gap that names its seq (exit $rc)" eval \
	"test $rc -eq 1 && test \$(grep -c 'gap: seq 5..5 missing' '$work/vc-gap.out') -eq 2"
# (one hex digit inside line 7's "record", 30 digits in: a protobuf byte of that record)
awk 'NR == 7 { n = index($0, "\"record\":\""); c = substr($0, n + 40, 1); r = (c == "0") ? "1" : "0";
	$0 = substr($0, 1, n + 39) r substr($0, n + 41) } { print }' "$work/a.jsonl" >"$work/break.jsonl"
"$wfpbctl" audit verify-collected "$work/break.jsonl" --keys "$work/keys" >"$work/vc-break.out" 2>&1
rc=$?
check "a record altered in its bytes is a break (exit $rc): $(grep -m1 -E 'break|altered' "$work/vc-break.out" | sed 's/^ *//')" \
	eval "test $rc -eq 1 && grep -qE 'break: seq 8 |altered: seq 7 ' '$work/vc-break.out'"
# rewritten WHAT PATTERN REPLACEMENT: in the first line matching PATTERN (a sed regex), PATTERN
# becomes REPLACEMENT, the line's record left as it was: verify-collected must name that seq altered.
rewritten() {
	local seq rc
	seq=$(grep -m1 "$2" "$work/a.jsonl" | sed -n 's/.*"seq":\([0-9]*\),.*/\1/p')
	sed "0,\\|$2|s||$3|" "$work/a.jsonl" >"$work/rewritten.jsonl"
	"$wfpbctl" audit verify-collected "$work/rewritten.jsonl" --keys "$work/keys" >"$work/vc-rewritten.out" 2>&1
	rc=$?
	check "$1 rewritten in the line is caught: seq $seq (exit $rc)" eval \
		"test -n '$seq' && ! cmp -s '$work/a.jsonl' '$work/rewritten.jsonl' && test $rc -eq 1 &&
		 grep -q 'altered: seq $seq ' '$work/vc-rewritten.out'"
}
rewritten "an op" '"op":"listen"' '"op":"connect"'
rewritten "a principal's image" '"image":"/' '"image":"/tmp/innocent/'
rewritten "a message" '"message":"[^"]' '"message":"(edited) '
rewritten "an address" '"addresses":\["127\.0\.0\.1:' '"addresses":["10.6.6.6:'
rewritten "a pid" '"pid":[0-9]*' '"pid":1'
rewritten "a latency" '"latency_us":[0-9]*' '"latency_us":999999999'
rewritten "the RFC 3339 time" '"time":"2' '"time":"1'
rewritten "a prev_hash" '"prev_hash":"0' '"prev_hash":"f'
rewritten "a request id" '"request_id":[0-9]*' '"request_id":4242424242'
# Strict lines (issue 25, item 8): what a SIEM reads is the last of two members, a second copy
# of a line is a line too, and a member spelt another way is another line.
vc_try() { # vc_try NAME FILE [OPTIONS...]: verify-collected over FILE, its report in vc-NAME.out
	local name=$1 file=$2
	shift 2
	"$wfpbctl" audit verify-collected "$file" --keys "$work/keys" "$@" >"$work/vc-$name.out" 2>&1
}
seq7=$(grep -m1 '"op":"listen"' "$work/a.jsonl" | sed -n 's/.*"seq":\([0-9]*\),.*/\1/p')
sed "0,/\"op\":\"listen\"/s/}\$/,\"status\":\"DENIED\",\"op\":\"reload\"}/" "$work/a.jsonl" >"$work/dupmember.jsonl"
vc_try dupmember "$work/dupmember.jsonl"; rc=$?
check "a line with a second \"status\" and \"op\" appended (what jq reads) is altered: seq $seq7 (exit $rc)" eval \
	"test $rc -eq 1 && grep -q 'altered: seq $seq7 ' '$work/vc-dupmember.out'"
{ cat "$work/a.jsonl"; grep -m1 '"op":"listen"' "$work/a.jsonl" | sed 's/"op":"listen"/"op":"connect"/'; } >"$work/dupline.jsonl"
vc_try dupline "$work/dupline.jsonl"; rc=$?
check "a second copy of a genuine line with a field changed is altered, not a repeat (exit $rc)" eval \
	"test $rc -eq 1 && grep -q 'altered: seq $seq7 ' '$work/vc-dupline.out'"
sed '0,/"status":/s//"status" :/' "$work/a.jsonl" >"$work/spaced.jsonl"
vc_try spaced "$work/spaced.jsonl"; rc=$?
check "a member written \"status\" : is altered (exit $rc)" eval \
	"test $rc -eq 1 && grep -q 'altered: seq 1 ' '$work/vc-spaced.out'"

# The unsigned tail (item 7): records chained after the host's last checkpoint, signed by nothing.
mkdir -p "$work/forge"
cp "$work/state/audit.log" "$work/forge/audit.log"
cp "$work/state/audit.pub" "$work/forge/audit.pub"
"$forge" "$work/forge/audit.log" 3 0
"$wfpbctl" audit export --json "$work/forge/audit.log" | tail -n 3 >"$work/forged3.jsonl"
cat "$work/a.jsonl" "$work/forged3.jsonl" >"$work/tail.jsonl"
vc_try tail "$work/tail.jsonl"; rc=$?
check "three made-up records after the last checkpoint (root to 10.66.66.66:22) are an unverified tail, never whole" eval \
	"grep -q '10.66.66.66:22' '$work/forged3.jsonl' && ! grep -q '^  whole: ' '$work/vc-tail.out' &&
	 grep -q '^  unverified tail: seq $((na + 1))..$((na + 3)) (3 records)' '$work/vc-tail.out'"
"$forge" "$work/forge/audit.log" 3 3600
"$wfpbctl" audit export --json "$work/forge/audit.log" | tail -n 3 >"$work/forged3old.jsonl"
cat "$work/a.jsonl" "$work/forged3.jsonl" "$work/forged3old.jsonl" >"$work/oldtail.jsonl"
vc_try oldtail "$work/oldtail.jsonl"; rc=$?
check "a tail older than --tail-max fails the run (exit $rc)" eval \
	"test $rc -eq 1 && grep -q 'STALE TAIL' '$work/vc-oldtail.out'"

# Every key given is accounted for (item 9): one that sent nothing is silent and fails the run.
"$wfpbctl" audit verify-collected "$work/a.jsonl" --keys "$work/keys" >"$work/vc-silent.out" 2>&1; rc=$?
check "lines of host a only, keys of two: the other is SILENT and fails the run (exit $rc)" eval \
	"test $rc -eq 1 && grep -q '^some-other-name.pub' '$work/vc-silent.out' && grep -q '^  SILENT: ' '$work/vc-silent.out'"
"$wfpbctl" audit verify-collected "$work/a.jsonl" --keys "$work/keys" --retired some-other-name.pub \
	>"$work/vc-retired.out" 2>&1; rc=$?
check "  and named --retired, it is reported retired and the run passes (exit $rc)" eval \
	"test $rc -eq 0 && grep -q '^  retired: ' '$work/vc-retired.out'"

# Nothing from a line reaches the terminal raw (item 10): a host name that moves the cursor.
esc=$(printf '\033')
sed "1s/\"host\":\"[^\"]*\"/\"host\":\"${esc}[1A${esc}[2Khost-b\"/" "$work/a.jsonl" >"$work/escape.jsonl"
sed -i "2s/\"host\":\"[^\"]*\"/\"host\":\"another-name\"/" "$work/escape.jsonl"
vc_try escape "$work/escape.jsonl"; rc=$?
check "a host field carrying terminal escapes never reaches the report raw (exit $rc)" eval \
	"! grep -q \"\$esc\" '$work/vc-escape.out' && test $rc -eq 1"
check "  the host is reported under its key's name, and a second host name for the key is reported" eval \
	"grep -q '^host-a.pub (host ' '$work/vc-escape.out' && grep -q 'hosts: lines of this key name more than one host' '$work/vc-escape.out'"

# The first host's lines claiming the second host's key: its checkpoints do not verify under it.
key_a=$(head -n 1 "$work/a.jsonl" | sed -n 's/.*"audit_key":"\([0-9a-f]*\)".*/\1/p')
key_b=$(head -n 1 "$work/b.jsonl" | sed -n 's/.*"audit_key":"\([0-9a-f]*\)".*/\1/p')
sed "s/\"audit_key\":\"$key_a\"/\"audit_key\":\"$key_b\"/" "$work/a.jsonl" >"$work/forged.jsonl"
"$wfpbctl" audit verify-collected "$work/forged.jsonl" --keys "$work/keys" >"$work/vc-forged.out" 2>&1
rc=$?
check "lines under another host's key: its checkpoints' signatures fail (exit $rc, $(grep -c 'signature:' "$work/vc-forged.out") bad)" \
	eval "test '$key_a' != '$key_b' && test $rc -eq 1 && grep -q 'signature: checkpoint seq' '$work/vc-forged.out'"
rm -f "$work/keys/host-a.pub"
"$wfpbctl" audit verify-collected "$work/collected.jsonl" --keys "$work/keys" >"$work/vc-nokey.out" 2>&1
rc=$?
check "lines of a key the centre does not hold fail the run (exit $rc)" eval \
	"test $rc -eq 1 && grep -q 'lines name an audit key not in' '$work/vc-nokey.out'"

# --- 8. the follower: every record shipped once at least, through its own crash, rotations
# and a broker restart ---------------------------------------------------------------------
rm -rf "$work/state/audit.log"* "$work/cursor" "$work/shipped.jsonl" "$work/keys8"
mkdir -p "$work/keys8"
write_conf "audit_max_kib = 4
audit_keep_files = 0
checkpoint_every = 20"
check "broker starts for the follower test (rotating every 4 KiB)" start
follow() { "$wfpbctl" audit export --json --follow --cursor "$work/cursor" "$work/state/audit.log" >>"$work/shipped.jsonl" &
	fpid=$!; }
follow
"$ack" "$endpoint" "$pub" "$work/acked8.txt" 60 >/dev/null 2>&1
sleep 0.6
kill -9 "$fpid"; wait "$fpid" 2>/dev/null
"$ack" "$endpoint" "$pub" "$work/acked8.txt" 60 >/dev/null 2>&1	# while no follower runs
follow
kill -TERM "$pid"; wait "$pid"; pid=
check "broker restarts under the follower" start
"$ack" "$endpoint" "$pub" "$work/acked8.txt" 60 >/dev/null 2>&1
kill -TERM "$pid"; wait "$pid"; pid=
last8=$("$wfpbctl" audit export --json "$work/state/audit.log" | tail -n 1 | sed -n 's/.*"seq":\([0-9]*\),.*/\1/p')
# It polls four times a second: give it ten seconds to reach the end, however loaded the machine.
# (The last file often ends exactly where the one the follower was reading had: a follower that
# told files apart by their length alone stopped here for good.)
for _ in $(seq 1 100); do [ "$(cat "$work/cursor" 2>/dev/null)" = "$last8" ] && break; sleep 0.1; done
kill "$fpid"; wait "$fpid" 2>/dev/null
rot8=$(ls "$work/state/" | grep -c '^audit\.log\.[0-9]*$')
cp "$work/state/audit.pub" "$work/keys8/host.pub"
"$wfpbctl" audit verify-collected "$work/shipped.jsonl" --keys "$work/keys8" >"$work/vc8.out" 2>&1
rc=$?
sed 's/^/    /' "$work/vc8.out"
check "the log rotated $rot8 times while the follower shipped it" test "$rot8" -ge 2
check "every record 1..$last8 reached the output, the chain whole, though the follower was killed (exit $rc)" eval \
	"test $rc -eq 0 && grep -q '^  whole: $last8 records ([0-9]* lines), seq 1..$last8;' '$work/vc8.out'"
check "the cursor names the last record shipped ($(cat "$work/cursor" 2>/dev/null))" test "$(cat "$work/cursor" 2>/dev/null)" = "$last8"

# --- 9. the follower wakes when the log is written, not at its next poll ------------------
# With a poll of a minute, records written now must still leave within seconds (Linux: the
# log's directory is watched); a follower that only polled would wait the minute.
rm -rf "$work/state/audit.log"* "$work/cursor9" "$work/shipped9.jsonl"
write_conf ""
check "broker starts for the wake-up test" start
last9() { "$wfpbctl" audit export --json "$work/state/audit.log" | tail -n 1 | sed -n 's/.*"seq":\([0-9]*\),.*/\1/p'; }
"$wfpbctl" audit export --json --follow --poll-ms 60000 --cursor "$work/cursor9" "$work/state/audit.log" \
	>"$work/shipped9.jsonl" &
fpid=$!
start9=$(last9)
for _ in $(seq 1 50); do [ "$(cat "$work/cursor9" 2>/dev/null)" = "$start9" ] && break; sleep 0.1; done
"$ack" "$endpoint" "$pub" "$work/acked9.txt" 20 >/dev/null 2>&1
want9=$(last9)
t0=$(date +%s%N)
for _ in $(seq 1 50); do [ "$(cat "$work/cursor9" 2>/dev/null)" -ge "$want9" ] 2>/dev/null && break; sleep 0.1; done
waited=$(( ($(date +%s%N) - t0) / 1000000 ))
check "records written after the follower slept reached it in $waited ms, its poll a minute (seq $want9, cursor $(cat "$work/cursor9" 2>/dev/null))" \
	test "$(cat "$work/cursor9" 2>/dev/null)" -ge "$want9"
kill "$fpid"; wait "$fpid" 2>/dev/null
kill -TERM "$pid"; wait "$pid"; pid=

summary

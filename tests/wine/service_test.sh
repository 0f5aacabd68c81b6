#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# service_test.sh BROKERD_EXE WFPBCTL_EXE WORKDIR: wfpbrokerd.exe as a real
# service under Wine's Service Control Manager: install registers it as
# DESIGN.md §7 says, `net start` brings it to RUNNING with the pipe serving,
# NK and IK pings answer, `sc stop` stops it within 5 s with a client busy
# on the pipe (its audit log ends with a signed checkpoint),
# uninstall removes it. Ends with "N passed, M failed".
set -u
brokerd=$1 wfpbctl=$2 work=$3
. "$(dirname "$0")/../check.sh"
winpath() { printf 'Z:%s' "${1//\//\\}"; }
. "$(dirname "$0")/scm.sh"

rm -rf "$work"
mkdir -p "$work"
work=$(cd "$work" && pwd)
pipe="\\\\.\\pipe\\wfpbsvc-$$"
state=$(winpath "$work/state")
# An enrolled client key, for the IK ping.
ik_hex=$(wine "$wfpbctl" keygen --out "$(winpath "$work/client")" 2>/dev/null | tail -n 1 | tr -d '\r')
# Admin comes from the token's groups: Wine's token holds Administrators, elevated.
printf '[service]\nendpoint = %s\nstate_dir = %s\nbackend = sim\n[principal wine-admins]\ngroup_sid = S-1-5-32-544\nelevated = yes\nops = admin\n[principal wine-user]\nsid = S-1-5-21-0-0-0-1000\nops = fetch\n[principal enrolled]\nkey = %s\n' \
	"$pipe" "$state" "$ik_hex" >"$work/wfpbroker.conf"

wine "$brokerd" uninstall >/dev/null 2>&1	# a leftover from an interrupted run
check "install registers the service" eval 'wine "$brokerd" install --config "$(winpath "$work/wfpbroker.conf")" 2>"$work/install.err" | grep -q installed'
sed 's/^/    /' "$work/install.err"
wine reg query 'HKLM\System\CurrentControlSet\Services\wfpbroker' 2>/dev/null | tr -d '\r' >"$work/reg.txt"
check "auto start, own process, LocalSystem" eval 'grep -q "Start.*0x2" "$work/reg.txt" && grep -q "Type.*0x10" "$work/reg.txt" && grep -q "ObjectName.*LocalSystem" "$work/reg.txt"'
check "depends on Tcpip and BFE" grep -q 'DependOnService.*Tcpip.*BFE' "$work/reg.txt"
check "runs with --service and the given configuration" grep -q 'ImagePath.*--service --config' "$work/reg.txt"
check "net start brings the service to RUNNING" start_service
check "the running service answers a ping on its pipe (NK)" eval 'wine "$wfpbctl" --endpoint "$pipe" --server-key "$state\\server.pub" --timeout 5000 ping | grep -q ", NK,"'
check "and an enrolled client's ping (IK)" eval 'wine "$wfpbctl" --endpoint "$pipe" --server-key "$state\\server.pub" --client-key "$(winpath "$work/client.key")" --timeout 5000 ping | grep -q ", IK,"'
check "the token's Administrators group, elevated, grants admin (Status answers)" eval 'wine "$wfpbctl" --endpoint "$pipe" --server-key "$state\\server.pub" status | grep -q "^backend sim"'
# A callout names the service's PID: any user learns it from the SCM (wfpbctl service-pid).
svc_pid=$(wine "$wfpbctl" service-pid 2>/dev/null | tr -d '\r')
status_pid=$(wine "$wfpbctl" --endpoint "$pipe" --server-key "$state\\server.pub" status | tr -d '\r' | awk '$1 == "pid" { print $2 }')
check "service-pid names the running service's process ($svc_pid, status says $status_pid)" \
	eval 'test -n "$svc_pid" && test "$svc_pid" = "$status_pid"'
events() { wine "$wfpbctl" --endpoint "$pipe" --server-key "$state\\server.pub" status | tr -d '\r' | awk '$1 == "events_reported" { print $2 }'; }
check "the event source is registered for the Event Log" eval 'wine reg query "HKLM\\System\\CurrentControlSet\\Services\\EventLog\\Application\\wfpbroker" 2>/dev/null | tr -d "\r" | grep -q "EventMessageFile.*wfpbrokerd.exe"'
e0=$(events)
check "the start was reported to the Event Log (ReportEventW accepted)" test "${e0:-0}" -ge 1
wine "$wfpbctl" --endpoint "$pipe" --server-key "$state\\server.pub" stash 00 >/dev/null 2>&1
e1=$(events)
check "a denial is reported to the Event Log" test "${e1:-0}" -gt "${e0:-0}"
# SERVICE_CONTROL_PARAMCHANGE re-reads the configuration, as SIGHUP does on Linux.
stash_once() { wine "$wfpbctl" --endpoint "$pipe" --server-key "$state\\server.pub" stash 00 >/dev/null 2>&1; }
check "before the reload the session may not stash" eval '! stash_once'
# The first section that matches (wine-admins) decides: it gains stash.
sed -i 's/^ops = admin$/ops = admin stash/' "$work/wfpbroker.conf"
check "wfpbrokerd.exe reload sends PARAMCHANGE" eval 'wine "$brokerd" reload | grep -q "asked to reload"'
reloaded=0
for _ in $(seq 1 50); do stash_once && { reloaded=1; break; }; sleep 0.1; done
check "after PARAMCHANGE the service serves the new policy (stash granted)" test $reloaded = 1
# The audit follower (wfpbctl.exe audit export --follow) on the running service's log: what it
# ships, through the stop, must be every record of the log, and its cursor the last one.
wine "$wfpbctl" audit export --json --follow --cursor "$(winpath "$work/cursor")" --poll-ms 50 "$state\\audit.log" \
	>"$work/followed.jsonl" 2>"$work/follower.err" &
follower=$!
for _ in 1 2 3; do stash_once; done
# A client busy pinging while the service is stopped: the stop must not wait for it.
wine "$wfpbctl" --endpoint "$pipe" --server-key "$state\\server.pub" ping --count 1000000 >/dev/null 2>&1 &
busy=$!
sleep 1
t0=$(date +%s%N)
check "sc stop brings it to STOPPED with a client mid-stream" eval 'timeout 60 wine sc stop wfpbroker >/dev/null 2>&1; wait_state STOPPED' 
stop_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
# The bound is the service's (5 s); starting sc.exe under Wine takes part of what is measured.
check "the stop took ${stop_ms} ms (bound 5000 ms)" test "$stop_ms" -le 5000
for _ in $(seq 1 50); do kill -0 "$busy" 2>/dev/null || break; sleep 0.1; done
check "the busy client was disconnected, not left hanging" eval '! kill -0 $busy 2>/dev/null'
kill "$busy" 2>/dev/null
check "service-pid of a stopped service fails, naming why" eval \
	'! wine "$wfpbctl" service-pid >/dev/null 2>"$work/pid.err" && grep -q "not running" "$work/pid.err"'
check "after the stop the pipe is gone" eval '! wine "$wfpbctl" --endpoint "$pipe" --server-key "$state\\server.pub" --timeout 1000 ping >/dev/null 2>&1'
check "the stopped service's audit log verifies, signed to the end" wine "$wfpbctl" audit verify "$state\\audit.log" --pubkey "$state\\audit.pub"
last=$(wine "$wfpbctl" audit export --json "$state\\audit.log" 2>/dev/null | tail -n 1 | tr -d '\r' | sed -n 's/.*"seq":\([0-9]*\),.*/\1/p')
for _ in $(seq 1 100); do [ "$(tr -d '\r\n' <"$work/cursor" 2>/dev/null)" = "$last" ] && break; sleep 0.1; done
kill "$follower" 2>/dev/null; wait "$follower" 2>/dev/null
shipped=$(grep -c '"seq":' "$work/followed.jsonl")
check "the follower shipped all $last records of the running service's log ($shipped lines), its cursor at $(tr -d '\r\n' <"$work/cursor" 2>/dev/null)" \
	eval 'test -n "$last" && test "$shipped" -eq "$last" && test "$(tr -d "\r\n" <"$work/cursor")" = "$last"'
# An administrator's service configuration survives the next start: the service converges its
# own configuration once (install, or an MSI's first start), never again over a site's choice.
wine sc description wfpbroker "Site description" >/dev/null 2>&1
check "a site's description is set while the service is stopped" eval \
	'wine reg query "HKLM\\System\\CurrentControlSet\\Services\\wfpbroker" /v Description 2>/dev/null | grep -q "Site description"'
start_service >/dev/null
stop_service >/dev/null
check "and is still there after the service started again" eval \
	'wine reg query "HKLM\\System\\CurrentControlSet\\Services\\wfpbroker" /v Description 2>/dev/null | grep -q "Site description"'
# Group Policy over the file (HKLM\SOFTWARE\Policies\wfpbroker): its admin group is the only one
# (the file's Administrators lose admin), its retention wins, and wfpbctl settings says so.
gpo='HKLM\SOFTWARE\Policies\wfpbroker'
wine reg add "$gpo" /v AdminGroup /t REG_SZ /d S-1-5-21-1111-2222-3333-1013 /f >/dev/null 2>&1
wine reg add "$gpo" /v AuditKeepFiles /t REG_DWORD /d 7 /f >/dev/null 2>&1
wine "$wfpbctl" settings "$(winpath "$work/wfpbroker.conf")" 2>&1 | tr -d '\r' >"$work/settings.txt"
check "wfpbctl settings shows Group Policy's admin group and retention, and the file's backend" eval \
	"grep -qE '^admin +group-policy-administrators \\(group S-1-5-21-1111-2222-3333-1013\\) +Group Policy' '$work/settings.txt' &&
	 grep -qE '^audit_keep_files +7 +Group Policy' '$work/settings.txt' &&
	 grep -qE '^backend +sim +configuration file' '$work/settings.txt'"
start_service >/dev/null
check "  and the service takes it: the file's Administrators may no longer administer (Status refused)" eval \
	'! wine "$wfpbctl" --endpoint "$pipe" --server-key "$state\\server.pub" status >/dev/null 2>&1 &&
	 wine "$wfpbctl" --endpoint "$pipe" --server-key "$state\\server.pub" ping >/dev/null'
stop_service >/dev/null
wine reg delete "$gpo" /f >/dev/null 2>&1
start_service >/dev/null
check "  without the policy the file's Administrators administer again" eval \
	'wine "$wfpbctl" --endpoint "$pipe" --server-key "$state\\server.pub" status | grep -q "^backend sim"'
stop_service >/dev/null
# A start that fails tells the SCM why: ERROR_SERVICE_SPECIFIC_ERROR with the broker's own code.
printf 'max_sessions = lots\n' >>"$work/wfpbroker.conf"
timeout 60 wine net start wfpbroker >/dev/null 2>&1
wait_state STOPPED
wine sc query wfpbroker 2>/dev/null | tr -d '\r' >"$work/failed.txt"
check "a start refused by its configuration stops with its own code, 78 (EX_CONFIG): $(awk '/SERVICE_EXIT_CODE/ { print $3 }' "$work/failed.txt")" eval \
	"grep -q 'WIN32_EXIT_CODE *: 1066' '$work/failed.txt' && grep -q 'SERVICE_EXIT_CODE *: 78 ' '$work/failed.txt'"
check "uninstall removes the service" eval 'wine "$brokerd" uninstall | grep -q removed'
check "the service is gone from the registry" service_gone
check "the event source is gone too" eval '! wine reg query "HKLM\\System\\CurrentControlSet\\Services\\EventLog\\Application\\wfpbroker" >/dev/null 2>&1'
check "outside the SCM, without --console, it explains itself" eval 'wine "$brokerd" 2>&1 | grep -q "not started by the Service Control Manager"'
summary

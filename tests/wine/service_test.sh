#!/usr/bin/env bash
# service_test.sh BROKERD_EXE WFPBCTL_EXE WORKDIR: wfpbrokerd.exe as a real
# service under Wine's Service Control Manager: install registers it as
# DESIGN.md §7 says, `net start` brings it to RUNNING with the pipe serving,
# `net stop` stops it cleanly (its audit log ends with a signed checkpoint),
# uninstall removes it. Ends with "N passed, M failed".
set -u
brokerd=$1 wfpbctl=$2 work=$3
pass=0 fail=0
ok() { echo "ok   $*"; pass=$((pass + 1)); }
ko() { echo "FAIL $*"; fail=$((fail + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else ko "$what"; fi; }
winpath() { printf 'Z:%s' "${1//\//\\}"; }
. "$(dirname "$0")/scm.sh"

rm -rf "$work"
mkdir -p "$work"
work=$(cd "$work" && pwd)
pipe="\\\\.\\pipe\\wfpbsvc-$$"
state=$(winpath "$work/state")
printf '[service]\nendpoint = %s\nstate_dir = %s\n[principal wine-user]\nsid = S-1-5-21-0-0-0-1000\nops = admin\n' \
	"$pipe" "$state" >"$work/wfpbroker.conf"

wine "$brokerd" uninstall >/dev/null 2>&1	# a leftover from an interrupted run
check "install registers the service" eval 'wine "$brokerd" install --config "$(winpath "$work/wfpbroker.conf")" 2>"$work/install.err" | grep -q installed'
sed 's/^/    /' "$work/install.err"
wine reg query 'HKLM\System\CurrentControlSet\Services\wfpbroker' 2>/dev/null | tr -d '\r' >"$work/reg.txt"
check "auto start, own process, LocalSystem" eval 'grep -q "Start.*0x2" "$work/reg.txt" && grep -q "Type.*0x10" "$work/reg.txt" && grep -q "ObjectName.*LocalSystem" "$work/reg.txt"'
check "depends on Tcpip and BFE" grep -q 'DependOnService.*Tcpip.*BFE' "$work/reg.txt"
check "runs with --service and the given configuration" grep -q 'ImagePath.*--service --config' "$work/reg.txt"
check "net start brings the service to RUNNING" start_service
check "the running service answers a ping on its pipe" wine "$wfpbctl" --endpoint "$pipe" --server-key "$state\\server.pub" --timeout 5000 ping
events() { wine "$wfpbctl" --endpoint "$pipe" --server-key "$state\\server.pub" status | tr -d '\r' | awk '$1 == "events_reported" { print $2 }'; }
check "the event source is registered for the Event Log" eval 'wine reg query "HKLM\\System\\CurrentControlSet\\Services\\EventLog\\Application\\wfpbroker" 2>/dev/null | tr -d "\r" | grep -q "EventMessageFile.*wfpbrokerd.exe"'
e0=$(events)
check "the start was reported to the Event Log (ReportEventW accepted)" test "${e0:-0}" -ge 1
wine "$wfpbctl" --endpoint "$pipe" --server-key "$state\\server.pub" stash 00 >/dev/null 2>&1
e1=$(events)
check "a denial is reported to the Event Log" test "${e1:-0}" -gt "${e0:-0}"
check "net stop brings it to STOPPED" stop_service
check "after the stop the pipe is gone" eval '! wine "$wfpbctl" --endpoint "$pipe" --server-key "$state\\server.pub" --timeout 1000 ping >/dev/null 2>&1'
check "the stopped service's audit log verifies, signed to the end" wine "$wfpbctl" audit verify "$state\\audit.log" --pubkey "$state\\audit.pub"
check "uninstall removes the service" eval 'wine "$brokerd" uninstall | grep -q removed'
check "the service is gone from the registry" service_gone
check "the event source is gone too" eval '! wine reg query "HKLM\\System\\CurrentControlSet\\Services\\EventLog\\Application\\wfpbroker" >/dev/null 2>&1'
check "outside the SCM, without --console, it explains itself" eval 'wine "$brokerd" 2>&1 | grep -q "not started by the Service Control Manager"'
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]

#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# msi_test.sh MSI WFPBCTL_EXE: the MSI under Wine's msiexec: installs the files and the
# service and starts it (default pipe, keys in ProgramData); it answers wfpbctl with its
# defaults; msiexec /x stops and removes it. Ends with "N passed, M failed".
set -u
msi=$1 wfpbctl=$2
. "$(dirname "$0")/../check.sh"
. "$(dirname "$0")/scm.sh"

timeout 120 wine msiexec /x "$msi" /qn >/dev/null 2>&1	# a leftover from an interrupted run
programdata="$WINEPREFIX/drive_c/ProgramData/wfpbroker"
installed="$WINEPREFIX/drive_c/Program Files/wfpbroker/wfpbrokerd.exe"

# A service that cannot start (here: a configuration it refuses) fails the installation, which
# rolls back rather than leave a product installed and not running.
mkdir -p "$programdata"
printf '[service]\nmax_sessions = lots\n' >"$programdata/wfpbroker.conf"
check "with a configuration the service refuses, msiexec /i fails" eval '! timeout 120 wine msiexec /i "$msi" /qn'
check "and rolls back: no service, no program files" eval \
	'! wine reg query "HKLM\\System\\CurrentControlSet\\Services\\wfpbroker" >/dev/null 2>&1 && ! test -e "$installed"'
rm -f "$programdata/wfpbroker.conf"

check "msiexec /i installs silently" timeout 120 wine msiexec /i "$msi" /qn
reg=$(wine reg query 'HKLM\System\CurrentControlSet\Services\wfpbroker' 2>/dev/null | tr -d '\r')
check "the service is registered: auto start, LocalSystem, --service" eval 'echo "$reg" | grep -q "Start.*0x2" && echo "$reg" | grep -q "ObjectName.*LocalSystem" && echo "$reg" | grep -q "ImagePath.*wfpbrokerd.exe --service"'
check "the Event Log source is registered" eval 'wine reg query "HKLM\\System\\CurrentControlSet\\Services\\EventLog\\Application\\wfpbroker" 2>/dev/null | tr -d "\r" | grep -q EventMessageFile'
# No net start: the installation waited for it to run.
check "the service is RUNNING when msiexec returns" test "$(state_of)" = RUNNING
ok=0
for _ in $(seq 1 50); do
	wine "$wfpbctl" --timeout 2000 ping >/dev/null 2>&1 && { ok=1; break; }
	sleep 0.2
done
check "wfpbctl with no options reaches it (default pipe, pinned ProgramData key)" test $ok -eq 1
check "msiexec /x uninstalls silently" timeout 120 wine msiexec /x "$msi" /qn
check "the service is gone" service_gone
check "the pipe is gone" eval '! wine "$wfpbctl" --timeout 1000 ping >/dev/null 2>&1'
check "the keys stay in ProgramData for the next installation" test -s "$programdata/server.key"
summary

#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# msi_test.sh MSI WFPBCTL_EXE WIXL WXS BUILD_DIR VERSION NEXT_VERSION: the MSI under Wine's msiexec,
# as an administrator deploys it unattended. It installs the files and the service and starts
# it (default pipe, keys in ProgramData), and the installing administrator can run
# `wfpbctl status` at once (ADMINGROUP's default, Administrators); ADMINGROUP and CONFIGFILE
# change the configuration written at the first start; the Add/Remove Programs entry says what
# it is; a higher version, and the same version rebuilt, replace it (one entry) and a lower one
# is refused; the SDK feature installs only when asked; msiexec /x stops and removes it,
# keeping the state unless PURGE=1. Ends with "N passed, M failed".
set -u
msi=$1 wfpbctl=$2 wixl=$3 wxs=$4 build=$5 version=$6 next=$7
. "$(dirname "$0")/../check.sh"
. "$(dirname "$0")/scm.sh"

programdata="$WINEPREFIX/drive_c/ProgramData/wfpbroker"
installdir="$WINEPREFIX/drive_c/Program Files/wfpbroker"
installed="$installdir/wfpbrokerd.exe"
work=$build/tests/msi-test
rm -rf "$work"
mkdir -p "$work"
winpath() { printf 'Z:%s' "${1//\//\\}"; }
uninstall_all() { # every wfpbroker product a previous run may have left
	local code
	for code in $(wine reg query 'HKLM\Software\Microsoft\Windows\CurrentVersion\Uninstall' 2>/dev/null |
		tr -d '\r' | grep -o '{[0-9A-F-]*}'); do
		wine reg query "HKLM\\Software\\Microsoft\\Windows\\CurrentVersion\\Uninstall\\$code" /v DisplayName 2>/dev/null |
			tr -d '\r' | grep -q 'REG_SZ *wfpbroker$' && timeout 120 wine msiexec /x "$code" /qn >/dev/null 2>&1
	done
	true
}
arp() { # the values of wfpbroker's Add/Remove Programs entries, one "name value" a line
	local code
	for code in $(wine reg query 'HKLM\Software\Microsoft\Windows\CurrentVersion\Uninstall' 2>/dev/null |
		tr -d '\r' | grep -o '{[0-9A-F-]*}'); do
		wine reg query "HKLM\\Software\\Microsoft\\Windows\\CurrentVersion\\Uninstall\\$code" 2>/dev/null | tr -d '\r' |
			awk '$2 ~ /^REG_/ { v = $3; for (i = 4; i <= NF; i++) v = v " " $i; print $1, v }' >"$work/arp.one"
		grep -qx 'DisplayName wfpbroker' "$work/arp.one" && cat "$work/arp.one" && echo "--"
	done
}
entries() { arp | grep -c '^DisplayName wfpbroker$'; }
ctl() { # wfpbctl's output without CRs, and its exit status (not that of tr)
	local rc
	wine "$wfpbctl" --timeout 2000 "$@" >"$work/ctl.raw" 2>&1
	rc=$?
	tr -d '\r' <"$work/ctl.raw"
	return $rc
}
answers() { # answers CMD...: retries while the service comes up
	for _ in $(seq 1 50); do
		ctl "$@" >"$work/ctl.out" && return 0
		grep -q DENIED "$work/ctl.out" && return 1
		sleep 0.2
	done
	return 1
}
build_msi() { # build_msi VERSION NEXT OUT: the same .wxs and files, another version
	local src
	src=$(realpath --relative-to="$build" "$(dirname "$wxs")/..")
	(cd "$build" && "$wixl" -a x64 -D Version="$1" -D NextVersion="$2" -D Publisher=wfpbroker \
		-D Url=https://github.com/wfpbroker/wfpbroker -D SourceDir="$src" -o "$3" "$wxs" 2>/dev/null)
}

uninstall_all
rm -rf "$programdata"

# A service that cannot start (here: a configuration it refuses) fails the installation, which
# rolls back rather than leave a product installed and not running.
mkdir -p "$programdata"
printf '[service]\nmax_sessions = lots\n' >"$programdata/wfpbroker.conf"
check "with a configuration the service refuses, msiexec /i fails" eval '! timeout 120 wine msiexec /i "$msi" /qn'
check "and rolls back: no service, no program files" eval \
	'! wine reg query "HKLM\\System\\CurrentControlSet\\Services\\wfpbroker" >/dev/null 2>&1 && ! test -e "$installed"'
rm -rf "$programdata"

check "msiexec /i installs silently" timeout 120 wine msiexec /i "$msi" /qn
reg=$(wine reg query 'HKLM\System\CurrentControlSet\Services\wfpbroker' 2>/dev/null | tr -d '\r')
check "the service is registered: auto start, LocalSystem, --service" eval 'echo "$reg" | grep -q "Start.*0x2" && echo "$reg" | grep -q "ObjectName.*LocalSystem" && echo "$reg" | grep -q "ImagePath.*wfpbrokerd.exe --service"'
check "the Event Log source is registered" eval 'wine reg query "HKLM\\System\\CurrentControlSet\\Services\\EventLog\\Application\\wfpbroker" 2>/dev/null | tr -d "\r" | grep -q EventMessageFile'
# No net start: the installation waited for it to run.
check "the service is RUNNING when msiexec returns" test "$(state_of)" = RUNNING
check "wfpbctl with no options reaches it (default pipe, pinned ProgramData key)" answers ping
check "the installing administrator may run wfpbctl status at once (ADMINGROUP: Administrators)" answers status
check "a fresh install runs the real backend (status says backend wfp), never the test double" eval \
	'grep -qx "backend wfp" "$work/ctl.out"'
check "the service's pipe is under ProtectedPrefix\\Administrators, where no standard user can create a name" \
	answers --endpoint '\\.\pipe\ProtectedPrefix\Administrators\wfpbroker\broker' ping
check "  and the old open name is not served (an old client's default: docs/DECISIONS.md)" eval \
	'! ctl --endpoint "\\\\.\\pipe\\wfpbroker" ping >/dev/null 2>&1'
check "the configuration the service wrote grants admin to S-1-5-32-544 only" eval \
	"tr -d '\\r' <'$programdata/wfpbroker.conf' | grep -qx 'group_sid = S-1-5-32-544' &&
	 test \"\$(tr -d '\\r' <'$programdata/wfpbroker.conf' | grep -c '^ops')\" = 1"
arp >"$work/arp.txt"
check "Add/Remove Programs: one entry, version $version, publisher, URL, no Modify" eval \
	"test \$(grep -c '^DisplayName wfpbroker$' '$work/arp.txt') = 1 && grep -qx 'DisplayVersion $version' '$work/arp.txt' &&
	 grep -qx 'Publisher wfpbroker' '$work/arp.txt' && grep -q '^URLInfoAbout https://' '$work/arp.txt' &&
	 grep -qx 'NoModify 0x1' '$work/arp.txt'"
check "the notices travel with the programs" test -s "$installdir/THIRD-PARTY.md" -a -s "$installdir/LICENSE.txt"
check "the SDK is not installed unless asked for" test ! -e "$installdir/sdk/bin/wfpb.dll"

# Upgrades: a higher version replaces it; so does the same version rebuilt; a lower one is refused.
build_msi "$next" 9.9.9 "$work/next.msi" && build_msi "$next" 9.9.9 "$work/next-rebuilt.msi"
check "two builds of $next made (each its own ProductCode)" test -s "$work/next.msi" -a -s "$work/next-rebuilt.msi"
check "msiexec /i of version $next upgrades in place" timeout 120 wine msiexec /i "$(winpath "$work/next.msi")" /qn
check "  one entry, version $next" eval "test \$(entries) = 1 && arp | grep -qx 'DisplayVersion $next'"
check "  the service runs and keeps its keys and policy" answers status
check "msiexec /i of $next rebuilt replaces it too" timeout 120 wine msiexec /i "$(winpath "$work/next-rebuilt.msi")" /qn
check "  still one entry" test "$(entries)" = 1
check "msiexec /i of $version over $next is refused (no downgrade)" eval '! timeout 120 wine msiexec /i "$msi" /qn'
check "  and leaves $next installed and serving" eval "test \$(entries) = 1 && answers ping"
check "msiexec /x uninstalls silently, keeping the state" eval 'uninstall_all; test "$(entries)" = 0'
check "the service is gone" service_gone
check "the pipe is gone" eval '! wine "$wfpbctl" --timeout 1000 ping >/dev/null 2>&1'
check "the keys and the configuration stay in ProgramData for the next installation" \
	test -s "$programdata/server.key" -a -s "$programdata/wfpbroker.conf"

# PURGE=1 removes the state; ADMINGROUP names another group; the SDK feature.
check "msiexec /i ADDLOCAL=Main,Sdk installs the SDK" eval 'timeout 120 wine msiexec /i "$msi" /qn ADDLOCAL=Main,Sdk &&
	test -s "$installdir/sdk/bin/wfpb.dll" -a -s "$installdir/sdk/lib/wfpb.lib" -a -s "$installdir/sdk/include/wfpb.h"'
check "  with what the documents point to: PROTOCOL.md, the .proto, the test vectors, the examples" eval \
	'test -s "$installdir/sdk/doc/PROTOCOL.md" -a -s "$installdir/sdk/doc/wfpbroker.proto" -a \
	 -s "$installdir/sdk/doc/vectors/transcript-v1.json" -a -s "$installdir/sdk/doc/examples/wfpb-relay.c"'
check "  and the Group Policy template (ADMX, en-US ADML)" eval \
	'test -s "$installdir/sdk/policy/wfpbroker.admx" -a -s "$installdir/sdk/policy/en-US/wfpbroker.adml"'
check "msiexec /x PURGE=1 removes ProgramData\\wfpbroker" eval 'timeout 120 wine msiexec /x "$msi" /qn PURGE=1 &&
	test ! -e "$programdata"'
# (Wine's token holds most builtin groups, so the group the user is not in is a domain one.)
other=S-1-5-21-1111-2222-3333-1013
check "msiexec /i ADMINGROUP=$other (a group this user is not in)" timeout 120 wine msiexec /i "$msi" /qn ADMINGROUP=$other
check "  the configuration names that group" eval "tr -d '\\r' <'$programdata/wfpbroker.conf' | grep -qx 'group_sid = $other'"
check "  and an administrator outside it is DENIED status" eval '! answers status && grep -q DENIED "$work/ctl.out"'
timeout 120 wine msiexec /x "$msi" /qn PURGE=1 >/dev/null 2>&1

# CONFIGFILE: the file an administrator prepared becomes the configuration.
printf '; prepared for this fleet\r\n[service]\r\nmax_sessions = 17\r\n[principal everyone]\r\ngroup_sid = S-1-1-0\r\nops = admin\r\n' \
	>"$work/fleet.conf"
check "msiexec /i CONFIGFILE=... installs that configuration" eval \
	'timeout 120 wine msiexec /i "$msi" /qn CONFIGFILE="$(winpath "$work/fleet.conf")" &&
	 cmp -s "$work/fleet.conf" "$programdata/wfpbroker.conf"'
check "  and the service runs by it" eval 'answers status'
# Copied once: the source is forgotten, so a later start that finds no configuration (an
# administrator removed it, or someone changed the source since) does not copy it again.
check "  the installer's CONFIGFILE is forgotten once copied" eval \
	'! wine reg query "HKLM\\System\\CurrentControlSet\\Services\\wfpbroker\\Parameters" /v ConfigSource >/dev/null 2>&1'
printf '[principal everyone]\r\ngroup_sid = S-1-1-0\r\nops = admin stash fetch connect\r\n' >"$work/fleet.conf"
stop_service >/dev/null
rm -f "$programdata/wfpbroker.conf"
start_service >/dev/null
check "  a later start without a configuration does not copy the changed source" \
	test ! -e "$programdata/wfpbroker.conf"
check "a CONFIGFILE that does not exist fails the installation" eval \
	'timeout 120 wine msiexec /x "$msi" /qn PURGE=1 >/dev/null 2>&1;
	 ! timeout 120 wine msiexec /i "$msi" /qn CONFIGFILE="Z:\\nonexistent\\fleet.conf" && test "$(entries)" = 0'
uninstall_all
rm -rf "$programdata"
summary

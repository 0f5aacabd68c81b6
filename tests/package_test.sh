#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# package_test.sh SRC_DIR WORKDIR: builds the Debian packages (scripts/package-deb.sh) and
# checks them as a distribution would: lintian reports no error or warning; the packages hold
# what they should; the unit passes `systemd-analyze verify` and scores no worse than
# docs/OPERATIONS.md says under `systemd-analyze security --offline=true`; the default
# configuration is valid; the packaged programs report the project version.
set -u
src=$1 work=$2
. "$src/tests/check.sh"
work=$(workdir "$work")
version=$(sed -n 's/^project(wfpbroker VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")

if ! "$src/scripts/package-deb.sh" "$work/deb" >"$work/package.out" 2>&1; then
	ko "the Debian packages build"
	cat "$work/package.out"
	summary
	exit 1
fi
ok "the Debian packages build (version $version)"
debs=("$work/deb/wfpbroker_${version}_"*.deb "$work/deb/libwfpb0_${version}_"*.deb "$work/deb/libwfpb-dev_${version}_"*.deb)
check "wfpbroker, libwfpb0 and libwfpb-dev are there" test -f "${debs[0]}" -a -f "${debs[1]}" -a -f "${debs[2]}"
# lintian refuses to be quiet about running as root; its verdict is the exit status.
check "lintian: no error and no warning" eval "lintian --fail-on error,warning ${debs[*]} >'$work/lintian.out' 2>&1 ||
	{ cat '$work/lintian.out'; false; }"

root=$work/root
mkdir -p "$root"
for d in "${debs[@]}"; do dpkg-deb -x "$d" "$root"; done
has() { dpkg-deb -c "$1" | awk '{ print $6 }' | grep -qx "./$2"; }
for f in usr/sbin/wfpbrokerd usr/bin/wfpbctl usr/bin/wfpb-relay lib/systemd/system/wfpbrokerd.service \
	etc/wfpbroker/wfpbroker.conf usr/lib/sysusers.d/wfpbroker.conf usr/share/man/man8/wfpbrokerd.8.gz \
	lib/systemd/system/wfpbroker-ship.service usr/lib/tmpfiles.d/wfpbroker.conf usr/share/wfpbroker/ship.conf.example \
	usr/share/man/man1/wfpbctl.1.gz usr/share/man/man1/wfpb-relay.1.gz usr/share/man/man5/wfpbroker.conf.5.gz; do
	check "wfpbroker holds /$f" has "${debs[0]}" "$f"
done
check "wfpbroker depends on no init: no bare systemd in Depends ($(dpkg-deb -f "${debs[0]}" Depends))" eval \
	"! dpkg-deb -f '${debs[0]}' Depends | tr ',' '\\n' | grep -qx ' *systemd *'"
check "the configuration is a conffile" sh -c "dpkg-deb -f '${debs[0]}' >/dev/null && dpkg-deb -I '${debs[0]}' conffiles |
	grep -qx /etc/wfpbroker/wfpbroker.conf"
check "libwfpb0 holds the soname and nothing to build with" eval "has '${debs[1]}' 'usr/lib/x86_64-linux-gnu/libwfpb.so.0' &&
	! dpkg-deb -c '${debs[1]}' | grep -qE 'include/|\\.a$|\\.pc$'"
check "libwfpb-dev holds the headers, libwfpb.a, wfpb.pc and the CMake package" eval \
	"has '${debs[2]}' usr/include/wfpb.h && has '${debs[2]}' usr/lib/x86_64-linux-gnu/libwfpb.a &&
	 has '${debs[2]}' usr/lib/x86_64-linux-gnu/pkgconfig/wfpb.pc &&
	 has '${debs[2]}' usr/lib/x86_64-linux-gnu/cmake/wfpb/wfpbConfig.cmake"
check "libwfpb-dev holds what the documents point to: libwfpb(3), the documents, the .proto, the vectors, the examples" eval \
	"has '${debs[2]}' usr/share/man/man3/libwfpb.3.gz && has '${debs[2]}' usr/share/doc/libwfpb-dev/PROTOCOL.md &&
	 has '${debs[2]}' usr/share/doc/libwfpb-dev/wfpbroker.proto &&
	 has '${debs[2]}' usr/share/doc/libwfpb-dev/vectors/transcript-v1.json &&
	 has '${debs[2]}' usr/share/doc/libwfpb-dev/examples/wfpb-relay.c &&
	 has '${debs[2]}' usr/share/doc/libwfpb-dev/examples/wfpb-udp-relay.c"
# Purge, in a scratch root (only the package's own part of postrm runs: debhelper's acts on the host).
purge_root=$work/purge-root
mkdir -p "$purge_root/var/lib/wfpbroker/audit" "$purge_root/run/wfpbroker"
touch "$purge_root/var/lib/wfpbroker/server.key" "$purge_root/var/lib/wfpbroker/server.pub" \
	"$purge_root/var/lib/wfpbroker/audit.key" "$purge_root/var/lib/wfpbroker/audit.pub" \
	"$purge_root/var/lib/wfpbroker/audit/audit.log"
dpkg-deb -I "${debs[0]}" postrm | sed -n '/# wfpbroker: purge begins/,/# wfpbroker: purge ends/p' >"$work/purge.sh"
DPKG_ROOT=$purge_root sh "$work/purge.sh" purge 2>"$work/purge.out"
check "apt purge removes the broker's keys and its runtime directory" eval \
	"test ! -e '$purge_root/var/lib/wfpbroker/server.key' -a ! -e '$purge_root/var/lib/wfpbroker/audit.key' -a \
	 ! -e '$purge_root/run/wfpbroker'"
check "  keeps the audit log and its public key, and says so with the users it leaves" eval \
	"test -e '$purge_root/var/lib/wfpbroker/audit/audit.log' -a -e '$purge_root/var/lib/wfpbroker/audit.pub' &&
	 grep -q 'Kept: the audit log' '$work/purge.out' && grep -q 'deluser wfpbroker' '$work/purge.out'"
check "postinst creates the broker's users, then the audit directory, before it starts the unit" eval \
	"dpkg-deb -I '${debs[0]}' postinst | awk '/systemd-sysusers/ { u = NR } /systemd-tmpfiles/ { t = NR }
	 /deb-systemd-invoke/ { s = NR } END { exit !(u && t && s && u < t && t < s) }'"
check "the follower has its own user in the reader group, and the audit directory is that group's, set-group-ID" eval \
	"grep -qx 'u wfpbroker-ship -:wfpbroker-audit .*' '$root/usr/lib/sysusers.d/wfpbroker.conf' &&
	 grep -qx 'd /var/lib/wfpbroker/audit 2750 wfpbroker wfpbroker-audit -' '$root/usr/lib/tmpfiles.d/wfpbroker.conf' &&
	 grep -qx 'audit_log = /var/lib/wfpbroker/audit/audit.log' '$root/etc/wfpbroker/wfpbroker.conf'"
check "the packaged wfpbrokerd and wfpbctl are version $version" eval \
	"'$root/usr/sbin/wfpbrokerd' --version | grep -qx 'wfpbrokerd $version' &&
	 '$root/usr/bin/wfpbctl' --version | grep -qx 'wfpbctl $version'"
# The group wfpbroker exists once postinst has run; here another stands in for it.
sed 's/^socket_group = wfpbroker /socket_group = nogroup /' "$root/etc/wfpbroker/wfpbroker.conf" >"$work/default.conf"
check "the default configuration is valid (wfpbctl policy check; group nogroup for wfpbroker)" eval \
	"test \"\$(diff '$root/etc/wfpbroker/wfpbroker.conf' '$work/default.conf' | grep -c '^[<>]')\" = 2 &&
	 '$root/usr/bin/wfpbctl' policy check '$work/default.conf'"
check "the default configuration grants nothing but admin to root" eval \
	"! grep -E '^ops' '$root/etc/wfpbroker/wfpbroker.conf' | grep -qv '^ops = admin$'"

# systemd-analyze verify wants the unit's programs and man pages where the unit names them; the
# unit is verified as shipped but for ExecStart, pointed at the extracted binary.
unit=$root/lib/systemd/system/wfpbrokerd.service
sed "s|^ExecStart=/usr/sbin/wfpbrokerd|ExecStart=$root/usr/sbin/wfpbrokerd|" "$unit" >"$work/wfpbrokerd.service"
check "the verified copy differs from the shipped unit in ExecStart only" \
	test "$(diff "$unit" "$work/wfpbrokerd.service" | grep -c '^[<>]')" = 2
check "systemd-analyze verify: the unit is valid" eval \
	"MANPATH='$root/usr/share/man' systemd-analyze verify '$work/wfpbrokerd.service' >'$work/verify.out' 2>&1 ||
	 { cat '$work/verify.out'; false; }"
systemd-analyze security --offline=true "$unit" >"$work/security.out" 2>&1
score=$(sed -n 's/.*Overall exposure level for wfpbrokerd.service: \([0-9.]*\).*/\1/p' "$work/security.out")
check "systemd-analyze security: exposure $score, no worse than 1.6 (docs/OPERATIONS.md)" \
	sh -c "systemd-analyze security --offline=true --threshold=16 '$unit' >/dev/null"

# The follower's unit: valid, hardened like the broker's, its own user, no capability.
ship=$root/lib/systemd/system/wfpbroker-ship.service
sed "s|/usr/bin/wfpbctl|$root/usr/bin/wfpbctl|" "$ship" >"$work/wfpbroker-ship.service"
check "systemd-analyze verify: the follower's unit is valid" eval \
	"MANPATH='$root/usr/share/man' systemd-analyze verify '$work/wfpbroker-ship.service' >'$work/verify-ship.out' 2>&1 ||
	 { cat '$work/verify-ship.out'; false; }"
check "the follower runs as wfpbroker-ship in group wfpbroker-audit, not as the broker, with no capability" eval \
	"grep -qx 'User=wfpbroker-ship' '$ship' && grep -qx 'Group=wfpbroker-audit' '$ship' &&
	 grep -qx 'CapabilityBoundingSet=' '$ship' && ! grep -q 'User=wfpbroker\$' '$ship'"
systemd-analyze security --offline=true "$ship" >"$work/security-ship.out" 2>&1
score=$(sed -n 's/.*Overall exposure level for wfpbroker-ship.service: \([0-9.]*\).*/\1/p' "$work/security-ship.out")
check "systemd-analyze security: the follower's exposure $score, no worse than 1.2 (docs/OPERATIONS.md)" \
	sh -c "systemd-analyze security --offline=true --threshold=12 '$ship' >/dev/null"

# The permissions the packaged layout gives, with real processes under three uids: the broker
# (umask 077, as its unit) writes its log into a set-group-ID directory of the reader group; the
# follower, another user in that group only, reads the log and nothing else of the broker's.
broker_uid=61021 reader_gid=61022 ship_uid=61023
fs=$work/fs
rm -rf "$fs"
mkdir -p "$fs/state/audit" "$fs/run" "$fs/ship"
chown "$broker_uid:$broker_uid" "$fs/state" "$fs/run"
chmod 0755 "$fs/state" "$fs/run"
chown "$broker_uid:$reader_gid" "$fs/state/audit"
chmod 2750 "$fs/state/audit"
chown "$ship_uid:$reader_gid" "$fs/ship"
chmod 0750 "$fs/ship"
chmod 0755 "$work" "$fs"
cat >"$fs/b.conf" <<CONF
[service]
endpoint = $fs/run/b.sock
state_dir = $fs/state
audit_log = $fs/state/audit/audit.log
audit_group_read = yes
backend = sim
[principal root]
uid = 0
ops = admin
CONF
setpriv --reuid "$broker_uid" --regid "$broker_uid" --clear-groups sh -c \
	"umask 077; exec '$root/usr/sbin/wfpbrokerd' --config '$fs/b.conf'" </dev/null >"$work/broker.log" 2>&1 &
bpid=$!
for _ in $(seq 1 100); do [ -S "$fs/run/b.sock" ] && break; sleep 0.05; done
"$root/usr/bin/wfpbctl" --endpoint "$fs/run/b.sock" --server-key "$fs/state/server.pub" ping >/dev/null 2>&1
as_ship() { setpriv --reuid "$ship_uid" --regid "$reader_gid" --clear-groups sh -c "umask 027; $1"; }
check "the follower's user reads the audit log (group wfpbroker-audit, mode $(stat -c %a "$fs/state/audit/audit.log"))" \
	as_ship "'$root/usr/bin/wfpbctl' audit export --json --pubkey '$fs/state/audit.pub' '$fs/state/audit/audit.log' |
	 grep -q '\"kind\":\"AUDIT_SERVICE_START\"'"
check "  and not the broker's keys, nor its socket's directory" eval \
	"! as_ship 'cat $fs/state/audit.key' 2>/dev/null && ! as_ship 'cat $fs/state/server.key' 2>/dev/null &&
	 ! as_ship 'touch $fs/run/planted' 2>/dev/null"
# setpriv itself in the background (not a shell function), so that $! is the follower's pid.
setpriv --reuid "$ship_uid" --regid "$reader_gid" --clear-groups sh -c "umask 027; exec '$root/usr/bin/wfpbctl' \
	audit export --json --follow --cursor '$fs/ship/cursor' --pubkey '$fs/state/audit.pub' \
	--output '$fs/ship/audit.jsonl' '$fs/state/audit/audit.log'" </dev/null >/dev/null 2>&1 &
fpid=$!
for _ in $(seq 1 100); do [ -s "$fs/ship/cursor" ] && break; sleep 0.05; done
kill "$fpid" 2>/dev/null
wait "$fpid" 2>/dev/null
kill "$bpid" 2>/dev/null
wait "$bpid" 2>/dev/null
check "what the follower writes is its owner's and the reader group's only (cursor $(stat -c %a "$fs/ship/cursor" 2>/dev/null), output $(stat -c %a "$fs/ship/audit.jsonl" 2>/dev/null))" eval \
	"stat -c %a '$fs/ship/cursor' | grep -qE '^[67][04]0\$' && stat -c %a '$fs/ship/audit.jsonl' | grep -qE '^[67][04]0\$' &&
	 test -s '$fs/ship/audit.jsonl'"
summary

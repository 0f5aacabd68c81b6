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
	usr/share/man/man1/wfpbctl.1.gz usr/share/man/man1/wfpb-relay.1.gz usr/share/man/man5/wfpbroker.conf.5.gz; do
	check "wfpbroker holds /$f" has "${debs[0]}" "$f"
done
check "the configuration is a conffile" sh -c "dpkg-deb -f '${debs[0]}' >/dev/null && dpkg-deb -I '${debs[0]}' conffiles |
	grep -qx /etc/wfpbroker/wfpbroker.conf"
check "libwfpb0 holds the soname and nothing to build with" eval "has '${debs[1]}' 'usr/lib/x86_64-linux-gnu/libwfpb.so.0' &&
	! dpkg-deb -c '${debs[1]}' | grep -qE 'include/|\\.a$|\\.pc$'"
check "libwfpb-dev holds the headers, libwfpb.a, wfpb.pc and the CMake package" eval \
	"has '${debs[2]}' usr/include/wfpb.h && has '${debs[2]}' usr/lib/x86_64-linux-gnu/libwfpb.a &&
	 has '${debs[2]}' usr/lib/x86_64-linux-gnu/pkgconfig/wfpb.pc &&
	 has '${debs[2]}' usr/lib/x86_64-linux-gnu/cmake/wfpb/wfpbConfig.cmake"
check "postinst creates the broker's user before it starts the unit" eval \
	"dpkg-deb -I '${debs[0]}' postinst | awk '/systemd-sysusers/ { u = NR } /deb-systemd-invoke/ { s = NR }
	 END { exit !(u && s && u < s) }'"
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
summary

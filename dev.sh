#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# wfpbroker developer entry point.
#
#   ./dev.sh setup   install build dependencies (Debian packages; Windows deps from Debian sources)
#   ./dev.sh build   build build/native (Linux) and build/win64 (Windows, mingw-w64)
#   ./dev.sh test    setup + build + every test of both targets (Windows tests under Wine),
#                    the native suite again under AddressSanitizer + UBSan, and each fuzzer briefly
#   ./dev.sh fuzz [SECONDS]  every libFuzzer harness for SECONDS each (default 60)
#   ./dev.sh run     setup + native build + run wfpbrokerd in the foreground with a local config
#   ./dev.sh bench   release build of the native tree, then the benchmark table; then the
#                    Windows service's worker pool under Wine
#   ./dev.sh package [--sign CERT KEY]  the .deb files and the MSI under build/packages,
#                    the Windows binaries and the MSI signed with CERT and KEY when given
#   ./dev.sh demo    (root) two proxies redirecting each other forever, then the broker fixing it (TCP, then UDP)
set -euo pipefail
cd "$(dirname "$0")"
root=$(pwd)
jobs=$(nproc)

apt_packages=(
	build-essential cmake pkg-config ca-certificates
	libsodium-dev libprotobuf-c-dev protobuf-c-compiler libcmocka-dev libjansson-dev
	mingw-w64 wine wine64 wixl
	autoconf automake libtool dpkg-dev
	clang libclang-rt-14-dev valgrind
	iproute2 nftables util-linux
	libsystemd-dev dbus-daemon
	debhelper lintian scdoc man-db msitools osslsigncode openssl
	haproxy rsyslog rsyslog-relp libgnutls28-dev time strace
)

export WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
wine_prefix=$root/build/win64/wineprefix
wineserver_bin=/usr/lib/wine/wineserver

log() { printf '== %s\n' "$*"; }

as_root() {
	if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

setup_packages() {
	local missing=()
	for p in "${apt_packages[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	if [ ${#missing[@]} -gt 0 ]; then
		log "installing: ${missing[*]}"
		# A third-party list that cannot be fetched must not stop Debian's from installing.
		as_root apt-get update -qq || true
		as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
	fi
}

setup_win_deps() {
	as_root bash scripts/build-win-deps.sh
}

configure() {
	[ -f build/native/CMakeCache.txt ] ||
		cmake -S . -B build/native -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	if [ "${1:-}" = both ]; then
		[ -f build/win64/CMakeCache.txt ] ||
			cmake -S . -B build/win64 -DCMAKE_TOOLCHAIN_FILE=cmake/mingw-w64-x86_64.cmake \
				-DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	fi
}

build() {
	configure both
	log "building build/native"
	cmake --build build/native -j"$jobs"
	log "building build/win64"
	cmake --build build/win64 -j"$jobs"
}

stop_wine() {
	[ -x "$wineserver_bin" ] && WINEPREFIX=$wine_prefix "$wineserver_bin" -k 2>/dev/null || true
}

run_tests() {
	local rc=0
	trap stop_wine EXIT
	log "native tests"
	(cd build/native && ctest --output-on-failure) || rc=1
	log "windows tests (Wine)"
	(cd build/win64 && ctest --output-on-failure) || rc=1
	stop_wine
	trap - EXIT
	log "native tests under AddressSanitizer + UndefinedBehaviorSanitizer"
	[ -f build/asan/CMakeCache.txt ] ||
		cmake -S . -B build/asan -DWFPB_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
	cmake --build build/asan -j"$jobs" >/dev/null || rc=1
	(cd build/asan && ctest --output-on-failure) || rc=1
	log "fuzzers, 10 s each"
	run_fuzzers 10 || rc=1
	if [ $rc -eq 0 ]; then log "all tests passed"; else log "TESTS FAILED"; fi
	return $rc
}

fuzz_targets="frame handshake request validate policy records audit relp"

# run_fuzzers SECONDS: each harness from the committed seeds (copied: the corpus in git stays
# as committed); a crash, leak or timeout fails the run and leaves its input in build/fuzz/.
run_fuzzers() {
	local secs=$1 t rc=0 work=$root/build/fuzz/work pass=0 fail=0
	[ -f build/fuzz/CMakeCache.txt ] ||
		CC=clang cmake -S . -B build/fuzz -DWFPB_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	# shellcheck disable=SC2086
	cmake --build build/fuzz -j"$jobs" --target $(for t in $fuzz_targets; do printf 'fuzz_%s ' "$t"; done) \
		>/dev/null || return 1
	for t in $fuzz_targets; do
		rm -rf "$work/$t"
		mkdir -p "$work/$t"
		cp tests/fuzz/corpus/"$t"/* "$work/$t/"
		if build/fuzz/tests/fuzz/fuzz_"$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
			-artifact_prefix="$root/build/fuzz/$t-" "$work/$t" >"$root/build/fuzz/$t.log" 2>&1; then
			echo "ok   fuzz_$t: $(grep -E '^Done' "$root/build/fuzz/$t.log" | tail -1)"
			pass=$((pass + 1))
		else
			fail=$((fail + 1))
			echo "FAIL fuzz_$t: see build/fuzz/$t.log"
			grep -E 'ERROR|SUMMARY' "$root/build/fuzz/$t.log" | head -5
			rc=1
		fi
	done
	echo "fuzzers: $pass passed, $fail failed"
	return $rc
}

run_broker() {
	local dir=$root/build/run uid gid group_line=
	# The user who asked for the broker (through sudo, if so) gets a principal.
	uid=${SUDO_UID:-$(id -u)}
	gid=${SUDO_GID:-$(id -g)}
	if [ "$uid" != 0 ]; then
		group_line="socket_group = $(getent group "$gid" | cut -d: -f1)"
	fi
	mkdir -p "$dir"
	chmod 755 "$dir"
	cat >"$dir/wfpbroker.conf" <<CONF
; Local development configuration written by ./dev.sh run (rewritten at every run).
[service]
endpoint = $dir/wfpbroker.sock
state_dir = $dir/state
backend = sim
$group_line

; The invoking user (uid $uid) may run wfpb-relay on loopback and inspect the broker.
[principal operator]
uid = $uid
ops = listen accept connect query apply stash fetch admin
listen = 127.0.0.0/8:*
connect = 127.0.0.0/8:*
CONF
	cat <<MSG
== wfpbrokerd starting with $dir/wfpbroker.conf (sim backend)
   In another terminal:
     build/native/client/wfpbctl --endpoint $dir/wfpbroker.sock --server-key $dir/state/server.pub ping
   A relay in front of an echo server:
     build/native/tests/tcp-echo server /tmp/echo.port &
     build/native/client/wfpb-relay --endpoint $dir/wfpbroker.sock --server-key $dir/state/server.pub \\
         --listen 127.0.0.1:9000 --to 127.0.0.1:\$(cat /tmp/echo.port) &
     build/native/tests/tcp-echo client 9000 hello
   Ctrl+C stops the broker.
MSG
	exec "$root/build/native/service/wfpbrokerd" --config "$dir/wfpbroker.conf"
}

# The Debian packages and the MSI under build/packages; with --sign CERT KEY the Windows
# binaries and the MSI are Authenticode-signed (scripts/sign-win.sh).
package() {
	local out=build/packages
	if [ "${1:-}" = --sign ] && { [ $# -ne 3 ] || [ ! -f "$2" ] || [ ! -f "$3" ]; }; then
		echo "usage: ./dev.sh package [--sign CERT.pem KEY.pem]" >&2
		exit 2
	fi
	rm -rf "$out"
	mkdir -p "$out"
	log "Debian packages"
	bash scripts/package-deb.sh "$out/deb" >/dev/null
	mv "$out"/deb/*.deb "$out"/
	log "Windows binaries and MSI"
	configure both
	cmake --build build/win64 -j"$jobs" --target wfpbrokerd wfpbctl wfpb-relay wfpb_shared
	if [ "${1:-}" = --sign ]; then
		bash scripts/sign-win.sh build/win64 "$out" "$2" "$3"
	else
		bash scripts/sign-win.sh build/win64 "$out"
	fi
	ls -l "$out"
}

case "${1:-}" in
setup)
	setup_packages
	setup_win_deps
	;;
build)
	build
	;;
test)
	setup_packages
	setup_win_deps
	build
	run_tests
	;;
run)
	setup_packages
	configure
	cmake --build build/native -j"$jobs" --target wfpbrokerd wfpbctl wfpb-relay tcp-echo
	run_broker
	;;
fuzz)
	setup_packages
	run_fuzzers "${2:-60}"
	;;
bench)
	setup_packages
	[ -f build/bench/CMakeCache.txt ] || cmake -S . -B build/bench -DCMAKE_BUILD_TYPE=Release >/dev/null
	cmake --build build/bench -j"$jobs" --target bench-channel wfpbrokerd wfpbctl
	printf 'machine: %s cores, %s\n' "$(nproc)" "$(uname -sr)"
	build/bench/bench/bench-channel build/bench/service/wfpbrokerd build/bench/client/wfpbctl
	# New connections per second: relay through the broker, the relay alone, haproxy.
	cmake --build build/bench -j"$jobs" --target wfpb-relay connload
	bash bench/conn_rate.sh build/bench/service/wfpbrokerd build/bench/client/wfpb-relay \
		build/bench/bench/connload build/bench/conn-rate
	# Where a relayed connection's cost goes: CPU, system calls, records, channel bytes.
	bash bench/relay_profile.sh build/bench/service/wfpbrokerd build/bench/client/wfpb-relay \
		build/bench/bench/connload build/bench/client/wfpbctl build/bench/relay-profile
	# The audit log shipped to rsyslog over RELP while 32 clients load the broker.
	cmake --build build/bench -j"$jobs" --target ack-client
	bash bench/audit_ship.sh build/bench/service/wfpbrokerd build/bench/client/wfpbctl \
		build/bench/tests/ack-client build/bench/audit-ship
	# What signing the audit log after every record costs against the default interval.
	bash bench/checkpoint_cost.sh build/bench/service/wfpbrokerd build/bench/client/wfpbctl \
		build/bench/tests/ack-client build/bench/checkpoint-cost
	# The centre's verifier over 10 M collected lines of 100 hosts.
	cmake --build build/bench -j"$jobs" --target fleet-gen
	bash bench/verify_collected.sh build/bench/bench/fleet-gen build/bench/client/wfpbctl \
		build/bench/verify-collected
	# The Windows service's worker pool, under Wine.
	setup_win_deps
	configure both
	cmake --build build/win64 -j"$jobs" --target wfpbrokerd bench-pool
	bash bench/wine_pool.sh build/win64
	;;
package)
	setup_packages
	setup_win_deps
	shift
	package "$@"
	;;
demo)
	setup_packages
	configure
	cmake --build build/native -j"$jobs" --target wfpbrokerd wfpbctl wfpb-relay wfpb-udp-relay tcp-echo
	bash tests/integration/proxy_loop.sh build/native/service/wfpbrokerd build/native/client/wfpbctl \
		build/native/client/wfpb-relay build/native/tests/tcp-echo build/native/demo --demo
	echo
	bash tests/integration/udp_loop.sh build/native/service/wfpbrokerd build/native/client/wfpbctl \
		build/native/client/wfpb-udp-relay build/native/tests/tcp-echo build/native/demo-udp --demo
	;;
*)
	sed -n '3,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
	exit 2
	;;
esac

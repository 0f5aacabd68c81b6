#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# install_test.sh BUILD_DIR SRC_DIR WORKDIR
#
# What an integrator does: `cmake --install` the native build into a fresh
# prefix, then build tests/consumer/consumer.c outside the tree against that
# prefix three ways (pkg-config with libwfpb.so, pkg-config --static with
# libwfpb.a, and find_package(wfpb)), and run each against the installed
# wfpbrokerd. Also checks that the libraries export exactly client/libwfpb.sym
# and that the public headers compile on their own, in C and in C++.
set -u
build=$1 src=$2 work=$3
. "$src/tests/check.sh"

work=$(workdir "$work")
prefix=$work/prefix
pid=
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	true
}
trap cleanup EXIT

check "cmake --install into a fresh prefix" cmake --install "$build" --prefix "$prefix"
libdir=$(cd "$prefix" && ls -d lib*/ lib/*-linux-gnu/ 2>/dev/null | sed 's|/$||' | while read -r d; do
	[ -e "$prefix/$d/libwfpb.so.0" ] && echo "$d"; done | head -n 1)
for f in sbin/wfpbrokerd bin/wfpbctl bin/wfpb-relay include/wfpb.h include/wfpb_addr.h include/wfpb_api.h \
	include/wfpb_error.h include/wfpb_version.h "$libdir/libwfpb.so.0" "$libdir/libwfpb.so" "$libdir/libwfpb.a" \
	"$libdir/pkgconfig/wfpb.pc" "$libdir/cmake/wfpb/wfpbConfig.cmake" "$libdir/cmake/wfpb/wfpbConfigVersion.cmake"; do
	check "installed: $f" test -e "$prefix/$f"
done
# Only public headers: nothing from proto/, service/ or the generated protobuf code.
check "installed headers are the public set only" \
	test "$(ls "$prefix/include" | tr '\n' ' ')" = "wfpb.h wfpb_addr.h wfpb_api.h wfpb_error.h wfpb_version.h "

# The export list, three ways: the WFPB_API declarations, libwfpb.so.0's dynamic symbols, libwfpb.a's globals.
want=$(grep -E '^[a-z_0-9]+$' "$src/client/libwfpb.sym" | sort)
declared=$(cat "$prefix"/include/*.h | tr '\n' ' ' | grep -oE 'WFPB_API [^;(]*\(' | grep -oE 'wfpb_[a-z_0-9]+ *\(' |
	tr -d ' (' | sort)
dynamic=$(nm -D --defined-only "$prefix/$libdir/libwfpb.so.0" | awk '$2 == "T" { sub(/@.*/, "", $3); print $3 }' | sort)
static=$(nm -g --defined-only "$prefix/$libdir/libwfpb.a" | awk 'NF == 3 { print $3 }' | sort)
check "WFPB_API declarations are libwfpb.sym" test "$declared" = "$want"
check "libwfpb.so.0 exports libwfpb.sym and nothing else" test "$dynamic" = "$want"
check "libwfpb.a's only globals are libwfpb.sym" test "$static" = "$want"
check "no protobuf-c symbol leaks from libwfpb.so.0" \
	sh -c "! nm -D --defined-only '$prefix/$libdir/libwfpb.so.0' | grep -q protobuf_c"
check "soname is libwfpb.so.0" sh -c "readelf -d '$prefix/$libdir/libwfpb.so.0' | grep -q 'SONAME.*\[libwfpb.so.0\]'"

# Each public header on its own, strictly, in C and in C++.
for h in wfpb.h wfpb_addr.h wfpb_error.h wfpb_api.h wfpb_version.h; do
	printf '#include <%s>\nint wfpb_consumer_tu;\n' "$h" >"$work/one.c"
	check "$h compiles on its own (C99, -pedantic)" \
		cc -std=c99 -Wall -Wextra -Werror -pedantic -I"$prefix/include" -c "$work/one.c" -o "$work/one.o"
	if command -v c++ >/dev/null; then
		cp "$work/one.c" "$work/one.cc"
		check "$h compiles on its own (C++)" c++ -Wall -Wextra -Werror -I"$prefix/include" -c "$work/one.cc" \
			-o "$work/one.o"
	fi
done

export PKG_CONFIG_PATH=$prefix/$libdir/pkgconfig
check "pkg-config knows wfpb $(pkg-config --modversion wfpb 2>/dev/null)" pkg-config --exists wfpb
# shellcheck disable=SC2046
check "consumer built with pkg-config (shared)" cc -std=c99 -Wall -Wextra -Werror -pedantic "$src/tests/consumer/consumer.c" \
	$(pkg-config --cflags --libs wfpb) -o "$work/consumer-pc"
# shellcheck disable=SC2046
check "consumer built with pkg-config --static (libwfpb.a)" cc -std=c99 -Wall -Wextra -Werror \
	"$src/tests/consumer/consumer.c" $(pkg-config --cflags wfpb) "$prefix/$libdir/libwfpb.a" \
	$(pkg-config --static --libs-only-l wfpb | sed 's/-lwfpb//') -o "$work/consumer-static"
check "the static consumer does not need libwfpb.so" sh -c "! readelf -d '$work/consumer-static' | grep -q libwfpb"
check "consumer configured with find_package(wfpb)" \
	cmake -S "$src/tests/consumer" -B "$work/consumer-cmake" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release
check "consumer built with find_package(wfpb)" cmake --build "$work/consumer-cmake"

# The installed broker, and each consumer against it.
mkdir -p "$work/run" "$work/state"
cat >"$work/wfpbroker.conf" <<CONF
[service]
endpoint = $work/run/wfpbroker.sock
state_dir = $work/state
backend = sim
audit = off

[principal root]
uid = $(id -u)
ops = admin
CONF
"$prefix/sbin/wfpbrokerd" --config "$work/wfpbroker.conf" 2>"$work/broker.log" &
pid=$!
for _ in $(seq 100); do [ -S "$work/run/wfpbroker.sock" ] && break; sleep 0.05; done
check "the installed wfpbrokerd serves" test -S "$work/run/wfpbroker.sock"
check "installed wfpbctl --version is the project version" \
	sh -c "'$prefix/bin/wfpbctl' --version | grep -qx 'wfpbctl $(pkg-config --modversion wfpb)'"
for v in pc static; do
	check "consumer-$v pings and reads status" sh -c "LD_LIBRARY_PATH='$prefix/$libdir' '$work/consumer-$v' \
		'$work/run/wfpbroker.sock' '$work/state/server.pub' >'$work/consumer-$v.out' 2>&1 &&
		grep -q 'later field untouched' '$work/consumer-$v.out'"
done
check "consumer (find_package) pings and reads status" sh -c "'$work/consumer-cmake/consumer' \
	'$work/run/wfpbroker.sock' '$work/state/server.pub' >'$work/consumer-cmake.out' 2>&1 &&
	grep -q 'later field untouched' '$work/consumer-cmake.out'"
check "consumer (find_package) loaded the installed libwfpb.so.0" sh -c "ldd '$work/consumer-cmake/consumer' |
	grep -q '$prefix/$libdir/libwfpb.so.0'"
cat "$work/consumer-cmake.out"
summary

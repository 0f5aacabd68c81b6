#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# consumer_test.sh SRC_DIR BUILD_DIR WORKDIR: what a Windows integrator does with the SDK:
# `cmake --install` the win64 build into a prefix, build tests/consumer/consumer.c against it
# (wfpb.lib, the import library, and the headers; once by hand, once with find_package(wfpb)),
# and run it under Wine next to wfpb.dll against the installed wfpbrokerd.exe on a real named
# pipe. Ends with "N passed, M failed".
set -u
src=$1 build=$2 work=$3
. "$src/tests/check.sh"
work=$(workdir "$work")
prefix=$work/prefix
winpath() { printf 'Z:%s' "${1//\//\\}"; }
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; true; }
trap cleanup EXIT

check "cmake --install the win64 build into a prefix" sh -c "cmake --install '$build' --prefix '$prefix' >/dev/null"
for f in bin/wfpb.dll lib/wfpb.lib include/wfpb.h lib/cmake/wfpb/wfpbConfig.cmake bin/wfpbrokerd.exe; do
	check "installed: $f" test -s "$prefix/$f"
done
cc=x86_64-w64-mingw32-gcc-win32
check "consumer.exe built against wfpb.lib and the installed headers" \
	"$cc" -std=c99 -Wall -Wextra -Werror -pedantic "$src/tests/consumer/consumer.c" -I"$prefix/include" \
	-L"$prefix/lib" -lwfpb -o "$work/consumer.exe"
check "consumer.exe imports wfpb.dll (and links no copy of the library)" sh -c \
	"x86_64-w64-mingw32-objdump -p '$work/consumer.exe' | grep -q 'DLL Name: wfpb.dll'"
check "consumer configured with find_package(wfpb)" sh -c "cmake -S '$src/tests/consumer' -B '$work/cm' \
	-DCMAKE_TOOLCHAIN_FILE='$src/cmake/mingw-w64-x86_64.cmake' -Dwfpb_DIR='$prefix/lib/cmake/wfpb' \
	-DCMAKE_BUILD_TYPE=Release >'$work/cm.out' 2>&1 || { cat '$work/cm.out'; false; }"
check "consumer built with find_package(wfpb)" sh -c "cmake --build '$work/cm' >'$work/cmb.out' 2>&1 ||
	{ cat '$work/cmb.out'; false; }"
cp "$prefix/bin/wfpb.dll" "$work/"
cp "$prefix/bin/wfpb.dll" "$work/cm/"

pipe="\\\\.\\pipe\\wfpbconsumer-$$"
state=$(winpath "$work/state")
printf '[service]\r\nendpoint = %s\r\nstate_dir = %s\r\naudit = off\r\n[principal wine-admins]\r\ngroup_sid = S-1-5-32-544\r\nelevated = yes\r\nops = admin\r\n' \
	"$pipe" "$state" >"$work/wfpbroker.conf"
wine "$prefix/bin/wfpbrokerd.exe" --console --config "$(winpath "$work/wfpbroker.conf")" >"$work/broker.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do [ -s "$work/state/server.pub" ] && break; sleep 0.1; done
sleep 0.5
check "the installed wfpbrokerd.exe serves its pipe" test -s "$work/state/server.pub"
for c in "$work/consumer.exe" "$work/cm/consumer.exe"; do
	name=${c#"$work"/}
	check "$name, next to wfpb.dll, pings and reads status under Wine" sh -c \
		"wine '$c' '$pipe' '$state\\server.pub' >'$work/out.txt' 2>&1; tr -d '\\r' <'$work/out.txt' | grep -q 'later field untouched' ||
		 { cat '$work/out.txt'; false; }"
done
tr -d '\r' <"$work/out.txt"
summary

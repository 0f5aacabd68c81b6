#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds the Windows (x86_64-w64-mingw32) dependencies from Debian's source
# packages into a static prefix: libsodium, the protobuf-c runtime, cmocka, and libuv (for the
# test that runs a libuv loop on libwfpb's notice socket). Each library is rebuilt only when its stamp (package version plus this
# script's hash) changes, so a second run costs a few apt-cache lookups.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
host=x86_64-w64-mingw32
prefix=${WFPB_WIN_PREFIX:-$root/build/deps/win64}
src=$root/build/deps/src
jobs=$(nproc)
self_hash=$(sha256sum "$0" | cut -c1-16)

mkdir -p "$prefix" "$src"

ensure_deb_src() {
	if ! apt-get source --print-uris libsodium >/dev/null 2>&1; then
		cat >/etc/apt/sources.list.d/wfpbroker-deb-src.sources <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
		apt-get update -qq || true
	fi
}

# fetch PKG: unpacks Debian's source of PKG under $src and prints its directory.
fetch() {
	local pkg=$1 ver dir
	ver=$(apt-cache showsrc "$pkg" | awk '/^Version:/ { print $2; exit }')
	dir=$src/$pkg-$ver
	if [ ! -d "$dir/.unpacked" ]; then
		rm -rf "$dir"
		mkdir -p "$dir"
		if ! (cd "$dir" && apt-get source -qq --download-only "$pkg=$ver" >/dev/null 2>&1 &&
			dpkg-source -x ./*.dsc tree >/dev/null 2>&1); then
			echo "win64 deps: cannot fetch or unpack the Debian source of $pkg $ver" >&2
			return 1
		fi
		mkdir -p "$dir/.unpacked"
	fi
	echo "$dir/tree"
}

stamp_ok() { [ -f "$prefix/.stamp-$1" ] && [ "$(cat "$prefix/.stamp-$1")" = "$2" ]; }
stamp_set() { echo "$2" >"$prefix/.stamp-$1"; }

build_libsodium() {
	local tree ver stamp
	ver=$(apt-cache showsrc libsodium | awk '/^Version:/ { print $2; exit }')
	stamp="$ver-$self_hash"
	stamp_ok libsodium "$stamp" && return 0
	echo "win64 deps: building libsodium $ver"
	tree=$(fetch libsodium) || return 1
	(cd "$tree" &&
		{ [ -x configure ] || ./autogen.sh -s >/dev/null 2>&1 || ./autogen.sh >/dev/null; } &&
		./configure -q --host=$host --prefix="$prefix" --disable-shared --enable-static \
			--disable-ssp --with-pic=no >/dev/null &&
		make -s -j"$jobs" >/dev/null && make -s install >/dev/null)
	stamp_set libsodium "$stamp"
}

build_protobuf_c() {
	local tree ver stamp
	ver=$(apt-cache showsrc protobuf-c | awk '/^Version:/ { print $2; exit }')
	stamp="$ver-$self_hash"
	stamp_ok protobuf-c "$stamp" && return 0
	echo "win64 deps: building protobuf-c runtime $ver"
	tree=$(fetch protobuf-c) || return 1
	(cd "$tree" &&
		{ [ -x configure ] || autoreconf -fi >/dev/null 2>&1; } &&
		./configure -q --host=$host --prefix="$prefix" --disable-shared --enable-static \
			--disable-protoc >/dev/null &&
		make -s -j"$jobs" >/dev/null && make -s install >/dev/null)
	stamp_set protobuf-c "$stamp"
}

build_cmake_pkg() {
	local pkg=$1 tree ver stamp
	shift
	ver=$(apt-cache showsrc "$pkg" | awk '/^Version:/ { print $2; exit }')
	stamp="$ver-$self_hash"
	stamp_ok "$pkg" "$stamp" && return 0
	echo "win64 deps: building $pkg $ver"
	tree=$(fetch "$pkg") || return 1
	rm -rf "$tree/_win64"
	cmake -S "$tree" -B "$tree/_win64" -DCMAKE_TOOLCHAIN_FILE="$root/cmake/mingw-w64-x86_64.cmake" \
		-DCMAKE_INSTALL_PREFIX="$prefix" -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
	cmake --build "$tree/_win64" -j"$jobs" >/dev/null
	cmake --install "$tree/_win64" >/dev/null
	stamp_set "$pkg" "$stamp"
}

ensure_deb_src
build_libsodium
build_protobuf_c
build_cmake_pkg cmocka -DBUILD_SHARED_LIBS=OFF -DWITH_STATIC_LIB=ON -DWITH_EXAMPLES=OFF \
	-DUNIT_TESTING=OFF -DPICKY_DEVELOPER=OFF
build_cmake_pkg libuv1 -DLIBUV_BUILD_TESTS=OFF -DLIBUV_BUILD_BENCH=OFF -DBUILD_TESTING=OFF
echo "win64 deps: ready in $prefix"

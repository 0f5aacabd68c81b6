#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# win_binaries.sh OBJDUMP VERSION WFPB_DLL SYMFILE EXE...: wfpb.dll exports exactly
# the names of client/libwfpb.sym and imports only DLLs every Windows has
# (libsodium and protobuf-c are linked in, so there is no other DLL to ship
# beside it); it and every program carry a VERSIONINFO resource naming
# itself and the project version.
set -u
objdump=$1 version=$2 dll=$3 sym=$4
shift 4
. "$(dirname "$0")/../check.sh"
want=$(grep -E '^[a-z_0-9]+$' "$sym" | sort)
got=$("$objdump" -p "$dll" | sed -n '/\[Ordinal\/Name Pointer\] Table/,/^$/p' | awk 'NF >= 2 { print $NF }' |
	grep -E '^wfpb_|^[a-z]' | grep -v Table | sort)
check "wfpb.dll exports libwfpb.sym and nothing else" test "$got" = "$want"
imports=$("$objdump" -p "$dll" | awk '/DLL Name:/ { print toupper($3) }' | sort | tr '\n' ' ')
echo "imports: $imports"
check "wfpb.dll imports system DLLs only" sh -c "echo '$imports' | tr ' ' '\n' | grep -v '^$' |
	grep -vxE 'ADVAPI32.DLL|KERNEL32.DLL|MSVCRT.DLL|OLE32.DLL|SHELL32.DLL|WS2_32.DLL|NTDLL.DLL|USER32.DLL' | grep -q . && exit 1 || exit 0"
for f in "$dll" "$@"; do
	name=$(basename "$f")
	# VERSIONINFO strings are UTF-16LE: each key is followed by its value.
	info=$(strings -el "$f" | grep -A1 -xE 'FileVersion|ProductVersion|OriginalFilename|ProductName' | tr '\n' ' ')
	check "$name: VERSIONINFO $version ($info)" sh -c "echo '$info' | grep -q 'FileVersion $version ' &&
		echo '$info' | grep -q 'ProductVersion $version' && echo '$info' | grep -q 'OriginalFilename $name '"
done
summary

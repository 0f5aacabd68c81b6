#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# gpo_template.sh SRC_DIR: the Group Policy template ships well-formed and names exactly the
# values the service reads (service/win/gpo_win.c), and each of its strings and presentations
# is defined in the en-US ADML.
set -u
src=$1
. "$src/tests/check.sh"
admx=$src/installer/windows/wfpbroker.admx adml=$src/installer/windows/en-US/wfpbroker.adml
check "the ADMX and ADML are well-formed XML" python3 -c "
import sys, xml.dom.minidom as m
m.parse(sys.argv[1]); m.parse(sys.argv[2])" "$admx" "$adml"
named=$(grep -o 'valueName="[A-Za-z]*"' "$admx" | sed 's/valueName="\(.*\)"/\1/' | sort -u | tr '\n' ' ')
read_=$(grep -oE 'value\(k, L"[A-Za-z]+"' "$src/service/win/gpo_win.c" | sed 's/.*L"\(.*\)"/\1/' | sort -u | tr '\n' ' ')
check "the ADMX names the values the service reads ($named)" test "$named" = "$read_"
missing=
for id in $(grep -oE '\$\((string|presentation)\.[A-Za-z_]+\)' "$admx" | sed -E 's/\$\((string|presentation)\.(.*)\)/\2/' | sort -u); do
	grep -q "id=\"$id\"" "$adml" || missing="$missing $id"
done
check "every string and presentation the ADMX uses is in the ADML${missing:+ (missing:$missing)}" test -z "$missing"
summary

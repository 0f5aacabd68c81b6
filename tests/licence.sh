#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# licence.sh SRCDIR: every file of the source tree names its licence (an SPDX
# line in its first three lines), except the ones REUSE.toml covers (NOTICE, the Debian copyright and source/format files, fuzz
# corpora and JSON vectors, which cannot hold a comment), and the licence
# files themselves are present.
set -eu
src=$1
cd "$src"
bad=0
for f in LICENSE NOTICE THIRD-PARTY.md REUSE.toml; do
	[ -s "$f" ] || { echo "missing $f"; bad=1; }
done
grep -q 'Apache License' LICENSE && grep -q 'Version 2.0, January 2004' LICENSE || { echo "LICENSE is not Apache-2.0"; bad=1; }
if git -C "$src" rev-parse --git-dir >/dev/null 2>&1; then
	files=$(git ls-files)
else
	files=$(find . -path ./build -prune -o -path ./.git -prune -o -type f -print | sed 's|^\./||')
fi
for f in $files; do
	case "$f" in
	LICENSE | NOTICE | tests/fuzz/corpus/* | *.json | installer/linux/debian/copyright | installer/linux/debian/source/format) continue ;;
	esac
	head -n 3 "$f" | grep -q 'SPDX-License-Identifier: Apache-2.0' || { echo "no SPDX line: $f"; bad=1; }
done
[ "$bad" -eq 0 ] && echo "every file names its licence"
exit "$bad"

# SPDX-License-Identifier: Apache-2.0
# Pass/fail bookkeeping for the shell tests; sourced, not run.
#   check WHAT CMD...   runs CMD and records "ok   WHAT" or "FAIL WHAT"
#   summary             prints "N passed, M failed" and returns non-zero on any failure
# CHECK_QUIET=1 keeps passing lines quiet (a demo prints its own story).
pass=0 fail=0
ok() { [ -n "${CHECK_QUIET:-}" ] || echo "ok   $*"; pass=$((pass + 1)); }
ko() { echo "FAIL $*"; fail=$((fail + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else ko "$what"; fi; }
summary() { echo "$pass passed, $fail failed"; [ "$fail" -eq 0 ]; }
# workdir DIR: empties DIR (creating it) and prints its absolute path, for a test's scratch space.
workdir() { rm -rf "$1" && mkdir -p "$1" && (cd "$1" && pwd); }

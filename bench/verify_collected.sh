#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# verify_collected.sh FLEET_GEN WFPBCTL WORKDIR [HOSTS [RECORDS_PER_HOST]]: the centre's verifier
# at fleet scale, in one run (docs/PERFORMANCE.md, "Central verification"):
#   export      wfpbctl audit export --json over every host's log, one after another: the cost
#               of making the lines, the baseline
#   verify      wfpbctl audit verify-collected over the same lines of all hosts interleaved
#               (one line of each host in turn, as a collector stores a fleet), read from a pipe
# Each is timed by its own CPU time (user + system), so lines/s is per core; verify's peak RSS
# is the kernel's maximum resident set size of that process. Default: 100 hosts x 100 000
# records (10 M lines). Exits 1 unless every host verified whole.
set -u
gen=$1 wfpbctl=$2 work=$3 hosts=${4:-100} records=${5:-100000}
rm -rf "$work"
"$gen" "$work" "$hosts" "$records" || { echo "verify_collected: fleet-gen failed"; exit 1; }
for ((i = 0; i < hosts; i++)); do cp "$work/h$i/audit.pub" "$work/keys/h$i.pub"; done
lines=$((hosts * records))
timed() { # timed OUT CMD...: CMD's elapsed, user, system seconds and peak RSS (KiB) into OUT
	local out=$1
	shift
	/usr/bin/time -f '%e %U %S %M' -o "$out" "$@"
}

export_all() { for ((i = 0; i < hosts; i++)); do "$wfpbctl" audit export --json "$work/h$i/audit.log"; done; }
( TIMEFORMAT='%U %S'; { time export_all >/dev/null; } 2>"$work/export.time" )
read -r eu es <"$work/export.time"

subst=
for ((i = 0; i < hosts; i++)); do subst+=" <(\"\$wfpbctl\" audit export --json \"\$work/h$i/audit.log\")"; done
eval "paste -d '\\n' $subst" | timed "$work/verify.time" "$wfpbctl" audit verify-collected - --keys "$work/keys" \
	>"$work/report.txt" 2>&1
rc=${PIPESTATUS[1]}
read -r ve vu vs vrss <"$work/verify.time"
whole=$(grep -c '^  whole: ' "$work/report.txt")
awk -v n="$lines" -v eu="$eu" -v es="$es" -v ve="$ve" -v vu="$vu" -v vs="$vs" -v rss="$vrss" -v h="$hosts" \
	-v r="$records" 'BEGIN {
	ecpu = eu + es; vcpu = vu + vs
	if (ecpu <= 0) ecpu = 0.001
	if (vcpu <= 0) vcpu = 0.001
	printf "central verification, %d hosts x %d records (%d lines), interleaved, through a pipe\n", h, r, n
	printf "  %-34s %12.0f lines/s per core (%.2f s CPU)\n", "export (baseline: making the lines)", n / ecpu, ecpu
	printf "  %-34s %12.0f lines/s per core (%.2f s CPU, %.2f s wall)\n", "verify-collected", n / vcpu, vcpu, ve
	printf "  %-34s %12.2f\n", "verify / export (rate ratio)", (n / vcpu) / (n / ecpu)
	printf "  %-34s %12.1f MiB (target <= 64)\n", "verify-collected peak RSS", rss / 1024
}'
echo "  hosts verified whole: $whole of $hosts (exit $rc)"
test "$rc" -eq 0 && test "$whole" -eq "$hosts"

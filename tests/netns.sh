# SPDX-License-Identifier: Apache-2.0
# Sourced by the scripts that need two hosts (proxy_loop.sh, udp_loop.sh): a "proxy" namespace
# ($px: the client, the broker, the proxies) and an "origin" namespace ($og), over a veth pair,
# IPv4 PREFIX.1 / PREFIX.2 and IPv6 PREFIX6::1 / PREFIX6::2, removed on every exit path with
# whatever runs in them and the processes in $pids. Needs root, ip, nft and setpriv: it fails,
# never skips, when they are missing. Call netns_up PREFIX PREFIX6 after setting $work.
pids=
die() { echo "FAIL $*"; echo "0 passed, 1 failed"; exit 1; }
in_px() { ip netns exec "$px" "$@"; }

netns_cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null; done
	for p in $pids; do wait "$p" 2>/dev/null; done
	# Deleting a namespace takes its nftables tables, its veth end (and so the peer) and its routes.
	ip netns pids "$px" 2>/dev/null | xargs -r kill -9 2>/dev/null
	ip netns pids "$og" 2>/dev/null | xargs -r kill -9 2>/dev/null
	ip netns del "$px" 2>/dev/null
	ip netns del "$og" 2>/dev/null
	true
}

netns_up() { # netns_up PREFIX PREFIX6: e.g. 10.77.0 fd77
	local v4=$1 v6=$2 tag=$$ ns
	px=wfpb-px-$tag og=wfpb-og-$tag
	local veth_px=wpx$tag veth_og=wog$tag
	[ "$(id -u)" = 0 ] || die "needs root: it creates network namespaces and nftables rules"
	for tool in ip nft setpriv; do
		command -v "$tool" >/dev/null || die "needs $tool (./dev.sh setup installs it)"
	done
	rm -rf "$work"
	mkdir -p "$work/run" "$work/state"
	work=$(cd "$work" && pwd)
	chmod 755 "$work" "$work/run"
	trap netns_cleanup EXIT
	trap 'exit 130' INT TERM
	ip netns add "$px" || die "cannot create network namespace $px (ip netns add)"
	ip netns add "$og" || die "cannot create network namespace $og"
	ip link add "$veth_px" type veth peer name "$veth_og" || die "cannot create a veth pair"
	ip link set "$veth_px" netns "$px" && ip link set "$veth_og" netns "$og" || die "cannot move the veth ends"
	ip -n "$px" addr add "$v4.1/24" dev "$veth_px" && ip -n "$og" addr add "$v4.2/24" dev "$veth_og" ||
		die "cannot address the veth pair"
	ip -n "$px" addr add "$v6::1/64" dev "$veth_px" nodad && ip -n "$og" addr add "$v6::2/64" dev "$veth_og" nodad ||
		die "cannot give the veth pair IPv6 addresses"
	for ns in "$px" "$og"; do ip -n "$ns" link set lo up; done
	ip -n "$px" link set "$veth_px" up && ip -n "$og" link set "$veth_og" up || die "cannot bring the veth pair up"
}

# write_broker_conf NAME: the broker's configuration for the two proxies (proxy_section NAME UID
# PORT MARK, the caller's, gives each its grants) into $work/wfpbroker.conf: the netfilter backend,
# root may administer.
write_broker_conf() {
	cat >"$work/wfpbroker.conf" <<CONF
; written by $1
[service]
endpoint = $endpoint
state_dir = $work/state
socket_group = nogroup
backend = netfilter

[principal operator]
uid = 0
ops = admin

$(proxy_section proxy-a 1001 "$a_port" "$mark_a")
$(proxy_section proxy-b 1002 "$b_port" "$mark_b")
CONF
}

# start_relays PHASE [RELAY OPTIONS...]: proxies A (uid 1001, $a_port) and B (uid 1002, $b_port),
# each $relay listening on $relay_host, logging to $work/PHASE-A.log and -B.log; stop_relays.
start_relays() {
	local phase=$1 uid p name port
	shift
	relay_pids=
	for name in A B; do
		if [ "$name" = A ]; then uid=1001 port=$a_port; else uid=1002 port=$b_port; fi
		ip netns exec "$px" setpriv --reuid="$uid" --regid=65534 --clear-groups "$relay" --name "proxy-$name" \
			--endpoint "$endpoint" --server-key "$pub" "$@" --listen "$relay_host:$port" \
			>"$work/$phase-$name.log" 2>&1 &
		p=$!
		relay_pids="$relay_pids $p"
		pids="$pids $p"
	done
	for name in A B; do
		for _ in $(seq 1 50); do grep -q 'listening on' "$work/$phase-$name.log" && break; sleep 0.1; done
	done
}
stop_relays() {
	for p in $relay_pids; do kill "$p" 2>/dev/null; done
	for p in $relay_pids; do wait "$p" 2>/dev/null; done
	relay_pids=
}

# audit_records OP DESTINATION_RE WHAT: the log verifies, and each proxy has its one OP record
# with the records it carried (their hash), its flow and an original destination matching the ERE.
audit_records() {
	check "the audit log verifies" eval "in_px '$wfpbctl' audit verify '$work/state/audit.log' --pubkey '$work/state/audit.pub' --live >'$work/verify.out' 2>&1"
	in_px "$wfpbctl" audit export --json "$work/state/audit.log" >"$work/audit.json" 2>"$work/audit.err"
	for who in proxy-a proxy-b; do
		check "the audit log shows $who's $3" grep -qE \
			"\"op\":\"$1\",\"principal\":\{[^}]*\"name\":\"$who\"\},\"addresses\":\[[^]]*\],\"flow_id\":\"[0-9a-f]{16}\",\"original_destination\":\"$2\",\"blob_hashes\":\[\"[0-9a-f]{64}\"\],\"status\":\"OK\"" \
			"$work/audit.json"
	done
}

#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# proxy_loop.sh BROKERD WFPBCTL RELAY TCP_ECHO WORKDIR [--demo]
#
# The problem wfpbroker exists for, with the real Linux kernel: two
# cooperating transparent proxies, A and B, each an unprivileged wfpb-relay
# under its own uid with its own mark bit. nftables sends connections for the
# origin to A unless they bear A's bit, and to B unless they bear B's bit.
#
#   1. Without records (each relay connects upstream with only its own bit),
#      A's upstream connection is B's to intercept and B's is A's: the
#      connection bounces A -> B -> A -> ... and never reaches the origin.
#   2. With the broker carrying the records (the SYN's marks, inherited by the
#      accepted socket, OR the principal's bit), the connection passes A and B
#      exactly once each and the reply comes back intact.
#
# Everything runs in two network namespaces this script creates ("proxy"
# with the client, broker and relays; "origin" with the echo server, over a
# veth pair) and removes on every exit path, pass or fail. Needs root. If
# namespaces or nftables are unavailable it fails and says why; it does not
# skip. --demo prints the story hop by hop (./dev.sh demo).
#
# WFPB_BROKER_UID=N runs the broker as the packaged unit does
# (installer/linux/wfpbrokerd.service): a dedicated uid, no supplementary
# groups, no_new_privs and CAP_NET_ADMIN as its only capability (effective,
# ambient and bounding set), and checks that the audit then says the clients'
# images could not be read.
set -u
brokerd=$1 wfpbctl=$2 relay=$3 tcp_echo=$4 work=$5 demo=${6:-}
CHECK_QUIET=$demo
. "$(dirname "$0")/../check.sh"
say() { [ -z "$demo" ] || printf '%s\n' "$*"; }

origin=10.77.0.2 origin6=fd77::2 port=7000 a_port=7101 b_port=7102 mark_a=0x1 mark_b=0x2
. "$(dirname "$0")/../netns.sh"
netns_up 10.77.0 fd77
# An accepted socket inherits the mark of the SYN that made it: the marks a proxy's records carry.
in_px sysctl -qw net.ipv4.tcp_fwmark_accept=1 || die "cannot set net.ipv4.tcp_fwmark_accept in $px"
in_px nft -f - <<NFT || die "nftables refused the redirect rules (is nf_tables/nft_nat available?)"
table ip wfpb_loop {
	chain output {
		type nat hook output priority -100; policy accept;
		ip daddr $origin tcp dport $port meta mark & $mark_a == 0 counter redirect to :$a_port comment "to proxy A"
		ip daddr $origin tcp dport $port meta mark & $mark_b == 0 counter redirect to :$b_port comment "to proxy B"
	}
}
table ip6 wfpb_loop {
	chain output {
		type nat hook output priority -100; policy accept;
		ip6 daddr $origin6 tcp dport $port meta mark & $mark_a == 0 counter redirect to :$a_port comment "to proxy A"
		ip6 daddr $origin6 tcp dport $port meta mark & $mark_b == 0 counter redirect to :$b_port comment "to proxy B"
	}
}
NFT
redirects() { # prints "A B": connections the kernel redirected to each proxy since the last mark_counters
	in_px nft list chain "$fam" wfpb_loop output | awk '/to proxy A/ { for (i = 1; i < NF; i++) if ($i == "packets") a = $(i + 1) }
		/to proxy B/ { for (i = 1; i < NF; i++) if ($i == "packets") b = $(i + 1) } END { print a + 0, b + 0 }' |
		{ read -r a b; echo $((a - base_a)) $((b - base_b)); }
}
fam=ip base_a=0 base_b=0
mark_counters() { read -r da db < <(redirects); base_a=$((base_a + da)) base_b=$((base_b + db)); }

# The origin: an echo server on 10.77.0.2:7000.
ip netns exec "$og" "$tcp_echo" server "$work/origin.port" "$origin" "$port" &
pids="$pids $!"
ip netns exec "$og" "$tcp_echo" server "$work/origin6.port" "$origin6" "$port" &
pids="$pids $!"
for _ in $(seq 1 50); do [ -s "$work/origin.port" ] && break; sleep 0.1; done
[ -s "$work/origin.port" ] || die "the origin echo server did not start"

# The broker, as root in the proxy host, with the netfilter backend.
endpoint=$work/run/wfpbroker.sock
pub=$work/state/server.pub
proxy_section() { # NAME UID PORT MARK: a proxy may listen on its port and reach the origin, with its own bit
	printf '[principal %s]\nuid = %s\nops = listen accept connect\nlisten = 127.0.0.1/32:%s, [::1]/128:%s\n' \
		"$1" "$2" "$3" "$3"
	printf 'connect = %s/32:%s, [%s]/128:%s\nmark = %s\n\n' "$origin" "$port" "$origin6" "$port" "$4"
}
write_broker_conf proxy_loop.sh
broker_as=()
if [ -n "${WFPB_BROKER_UID:-}" ]; then
	# The group is nogroup, the relays' group too, so the socket (socket_group = nogroup) is theirs to reach.
	chown "$WFPB_BROKER_UID:65534" "$work/run" "$work/state"
	chmod 755 "$work/state"
	broker_as=(setpriv --reuid="$WFPB_BROKER_UID" --regid=65534 --clear-groups --no-new-privs
		--inh-caps=-all,+net_admin --ambient-caps=-all,+net_admin --bounding-set=-all,+net_admin)
fi
ip netns exec "$px" "${broker_as[@]}" "$brokerd" --config "$work/wfpbroker.conf" >"$work/broker.log" 2>&1 &
broker_pid=$!
pids="$pids $broker_pid"
ctl() { in_px "$wfpbctl" --endpoint "$endpoint" --server-key "$pub" --timeout 3000 "$@"; }
for _ in $(seq 1 100); do ctl ping >/dev/null 2>&1 && break; sleep 0.1; done
check "the broker (backend netfilter) answers in the proxy namespace" eval "ctl ping >/dev/null"
status_field() { ctl status | awk -v k="$1" '$1 == k { print $2 }'; }
if [ -n "${WFPB_BROKER_UID:-}" ]; then
	bpid=$(status_field pid)
	check "the broker runs as uid $WFPB_BROKER_UID with CAP_NET_ADMIN alone (effective, bounding) and no_new_privs" eval \
		"awk '/^Uid:/ { u = \$2 } /^CapEff:/ { e = \$2 } /^CapBnd:/ { b = \$2 } /^NoNewPrivs:/ { n = \$2 }
		     END { exit !(u == $WFPB_BROKER_UID && e == \"0000000000001000\" && b == e && n == 1) }' /proc/$bpid/status"
	check "the broker warned once that it cannot read other users' images" \
		test "$(grep -c 'without CAP_SYS_PTRACE' "$work/broker.log")" = 1
fi

relay_pids=
relay_host=127.0.0.1
hops() { grep -c 'accepted' "$work/$1-$2.log"; }

# --- 1. Without records: the loop ---------------------------------------------
say "== 1. Two proxies that do not carry redirect records"
say "   nftables in the proxy host: to $origin:$port -> proxy A (127.0.0.1:$a_port) unless mark & $mark_a,"
say "                                                -> proxy B (127.0.0.1:$b_port) unless mark & $mark_b"
mark_counters
# The bound: each proxy gives up after relaying this many connections.
bound=25
start_relays loop --no-records --max-connections "$bound"
for name in A B; do
	check "proxy $name (unprivileged) cannot set SO_MARK itself: EPERM" \
		grep -q 'SO_MARK on its own sockets: refused (EPERM)' "$work/loop-$name.log"
done
in_px "$tcp_echo" client "$port" "hello origin" "$origin" 5 >"$work/loop-client.out" 2>&1
for _ in $(seq 1 50); do
	grep -q 'bound; exiting' "$work/loop-A.log" "$work/loop-B.log" && break
	sleep 0.1
done
sleep 0.2
read -r ra rb < <(redirects)
stop_relays
say "   the client's one connection, as the proxies saw it (first 6 hops):"
[ -z "$demo" ] || paste -d '\n' <(grep accepted "$work/loop-A.log") <(grep accepted "$work/loop-B.log") |
	grep -v '^$' | head -n 6 | sed 's/^/     /'
say "   ... the kernel redirected it $ra times to A and $rb times to B, until a proxy reached its bound of $bound;"
say "   the client got: \"$(tr -d '\n' <"$work/loop-client.out")\" (not its echo)"
# Whichever proxy reaches the bound first closes its listener, so the other stops one short.
check "without records the connection loops until a proxy hits its bound of $bound: A $(hops loop A), B $(hops loop B)" \
	test $(($(hops loop A) + $(hops loop B))) -ge $((2 * bound - 1))
check "the kernel redirected it back and forth: $ra times to A, $rb to B" test "$ra" -ge "$bound" -a "$rb" -ge "$bound"
check "without records the client never hears from the origin" eval "! grep -q 'hello origin' '$work/loop-client.out'"
check "each proxy's upstream bore only its own bit (A: $mark_a, B: $mark_b)" eval \
	"grep -q 'upstream => $origin:$port mark $mark_a (records withheld)' '$work/loop-A.log' &&
	 grep -q 'upstream => $origin:$port mark $mark_b (records withheld)' '$work/loop-B.log'"
sleep 0.3
check "stopping the looping proxies released their listeners" test "$(status_field listeners)" = 0

# --- 2. With the broker carrying records -----------------------------------------
say ""
say "== 2. The same proxies carrying records through wfpbroker"
mark_counters
applied0=$(status_field records_applied)
start_relays fixed
reply=$(in_px "$tcp_echo" client "$port" "hello origin" "$origin" 5 2>&1)
read -r ra rb < <(redirects)
say "   the client's one connection, hop by hop:"
[ -z "$demo" ] || cat "$work/fixed-A.log" "$work/fixed-B.log" | grep accepted | sed 's/^/     /'
say "   kernel redirects: $ra to A, $rb to B; the client got back: \"$reply\""
check "with records the reply comes back intact" test "$reply" = "hello origin"
check "with records the kernel redirected the connection once to A and once to B (counters: $ra $rb)" test "$ra $rb" = "1 1"
check "proxy A accepted it once, arriving unmarked, and went upstream with A's bit" \
	eval "test $(hops fixed A) = 1 && grep -q 'mark 0x0, upstream => $origin:$port mark $mark_a (records applied)' '$work/fixed-A.log'"
check "proxy B accepted it once, arriving with A's bit, and went upstream with both bits" \
	eval "test $(hops fixed B) = 1 && grep -q 'mark $mark_a, upstream => $origin:$port mark 0x3 (records applied)' '$work/fixed-B.log'"
check "Status: the broker applied two records (one per proxy)" \
	test "$(status_field records_applied)" = $((applied0 + 2))
stop_relays
audit_records relay '[^"]+' "one Relay with the records it applied, its flow and the original destination"
if [ -n "${WFPB_BROKER_UID:-}" ]; then
	check "the audit says proxy-a's image was unreadable (EACCES), not empty" \
		grep -qE '"image":"\(unreadable: Permission denied\)"[^}]*"name":"proxy-a"|"name":"proxy-a"[^}]*"image":"\(unreadable: Permission denied\)"' \
		"$work/audit.json"
fi
say "   audit: $(grep -c '"op":"connect".*"blob_hashes":\["' "$work/audit.json") connects with records; $(cat "$work/verify.out")"

# --- 3. The same over IPv6 (IP6T_SO_ORIGINAL_DST) ---------------------------------
say ""
say "== 3. The same proxies and records over IPv6"
fam=ip6 base_a=0 base_b=0
mark_counters
relay_host="[::1]"
start_relays v6
reply=$(in_px "$tcp_echo" client "$port" "hello over IPv6" "$origin6" 5 2>&1)
read -r ra rb < <(redirects)
[ -z "$demo" ] || cat "$work/v6-A.log" "$work/v6-B.log" | grep accepted | sed 's/^/     /'
say "   kernel redirects: $ra to A, $rb to B; the client got back: \"$reply\""
check "IPv6: the reply comes back intact" test "$reply" = "hello over IPv6"
check "IPv6: redirected once to A and once to B (counters: $ra $rb)" test "$ra $rb" = "1 1"
check "IPv6: each proxy found the original destination [$origin6]:$port and passed the marks on" eval \
	"grep -q 'mark 0x0, upstream => \\[$origin6\\]:$port mark $mark_a (records applied)' '$work/v6-A.log' &&
	 grep -q 'mark $mark_a, upstream => \\[$origin6\\]:$port mark 0x3 (records applied)' '$work/v6-B.log'"
stop_relays

netns_cleanup
trap - EXIT
check "tear-down leaves no namespace behind" eval "! ip netns list | grep -q 'wfpb-..-$$'"
check "tear-down leaves no veth behind" eval "! ip link show | grep -q 'w[po][xg]$$'"
check "tear-down leaves no process behind" eval "! pgrep -f -- '--endpoint $endpoint' >/dev/null"
summary

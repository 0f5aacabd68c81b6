/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A program outside the tree that uses only the installed libwfpb: built by
 * install_test.sh once with pkg-config and once with find_package(wfpb).
 * consumer ENDPOINT SERVER_PUB pings the broker, reads its status through a
 * struct larger than this library's (as a newer header would pass) and
 * checks the ABI rule: the tail it does not know stays as the caller left it,
 * and an options struct without its size is refused.
 */
#include <stdio.h>
#include <string.h>

#include <wfpb.h>

#if WFPB_VERSION_NUMBER < 100
#error "wfpb_version.h is missing or wrong"
#endif

struct newer_status {
	struct wfpb_status_info	info;
	uint64_t		field_of_a_later_version;
};

int
main(int argc, char **argv)
{
	struct wfpb_open_opts	o = WFPB_OPEN_OPTS_INIT, unsized;
	struct newer_status	st;
	struct wfpb_client	*c;
	struct wfpb_addr	a;
	char			err[256], text[WFPB_ADDR_STRLEN];
	uint32_t		proto = 0;

	if (argc != 3) {
		fprintf(stderr, "usage: consumer ENDPOINT SERVER_PUB\n");
		return 2;
	}
	printf("headers %s, library %s\n", WFPB_VERSION_STRING, wfpb_version());
	if (strcmp(WFPB_VERSION_STRING, wfpb_version()) != 0)
		return 1;
	if (wfpb_addr_parse("[2001:db8::1]:443", &a) != 0)
		return 1;
	wfpb_addr_format(&a, text);
	printf("address %s\n", text);

	memset(&unsized, 0, sizeof(unsized));
	if (wfpb_open(&unsized, &c, err, sizeof(err)) != WFPB_E_INVAL) {
		fprintf(stderr, "an options struct without its size was accepted\n");
		return 1;
	}
	printf("unsized options refused: %s\n", err);

	o.endpoint = argv[1];
	o.server_key_path = argv[2];
	if (wfpb_open(&o, &c, err, sizeof(err)) != 0) {
		fprintf(stderr, "open: %s\n", err);
		return 1;
	}
	if (wfpb_ping(c, (const uint8_t *)"hi", 2, &proto) != 0) {
		fprintf(stderr, "ping: %s\n", wfpb_errmsg(c));
		return 1;
	}
	printf("pong: protocol %u\n", proto);

	memset(&st, 0xA5, sizeof(st));
	st.info.size = sizeof(st);
	if (wfpb_server_status(c, &st.info) != 0) {
		fprintf(stderr, "status: %s\n", wfpb_errmsg(c));
		return 1;
	}
	if (st.field_of_a_later_version != 0xA5A5A5A5A5A5A5A5ull || st.info.size != sizeof(st) || st.info.pid == 0) {
		fprintf(stderr, "status wrote outside its own layout or not at all\n");
		return 1;
	}
	printf("status: broker pid %u, backend %s, later field untouched\n", st.info.pid, st.info.backend);
	wfpb_close(c);
	return 0;
}

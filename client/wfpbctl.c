/*
 * wfpbctl: command-line client of the broker.
 *
 *   wfpbctl [options] ping [--count N]
 *   wfpbctl keygen --out PREFIX        writes PREFIX.key (private) and PREFIX.pub
 *
 * options: --endpoint E  --server-key FILE  --client-key FILE (IK)  --timeout MS
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keyfile.h"
#include "wfpb.h"

static void
usage(void)
{
	fprintf(stderr,
	    "usage: wfpbctl [--endpoint E] [--server-key FILE] [--client-key FILE] [--timeout MS] ping [--count N]\n"
	    "       wfpbctl keygen --out PREFIX\n");
}

static int
cmd_keygen(int argc, char **argv)
{
	struct wfpb_noise_keypair	kp;
	char				priv[1024], pub[1024], hex[WFPB_KEY_HEXLEN + 1];
	int				rc;

	if (argc != 3 || strcmp(argv[1], "--out") != 0) {
		usage();
		return 2;
	}
	snprintf(priv, sizeof(priv), "%s.key", argv[2]);
	snprintf(pub, sizeof(pub), "%s.pub", argv[2]);
	if ((rc = wfpb_keyfile_generate(priv, pub, &kp)) != 0) {
		fprintf(stderr, "wfpbctl: keygen %s: %s\n", argv[2], wfpb_strerror(rc));
		return 1;
	}
	wfpb_key_to_hex(kp.pub, hex);
	memset(&kp, 0, sizeof(kp));
	printf("private key: %s\npublic key:  %s\n%s\n", priv, pub, hex);
	return 0;
}

static int
cmd_ping(struct wfpb_open_opts *o, int argc, char **argv)
{
	struct wfpb_client	*c;
	char			err[256];
	uint8_t			payload[32];
	uint32_t		version;
	uint64_t		t0, t1;
	long			count = 1, i;
	int			rc;

	if (argc == 3 && strcmp(argv[1], "--count") == 0) {
		count = strtol(argv[2], NULL, 10);
		if (count < 1 || count > 1000000) {
			usage();
			return 2;
		}
	} else if (argc != 1) {
		usage();
		return 2;
	}
	if ((rc = wfpb_open(o, &c, err, sizeof(err))) != 0) {
		fprintf(stderr, "wfpbctl: %s\n", err);
		return 1;
	}
	for (i = 0; i < count; i++) {
		memset(payload, (int)(i & 0xff), sizeof(payload));
		t0 = wfpb_monotonic_us();
		rc = wfpb_ping(c, payload, sizeof(payload), &version);
		t1 = wfpb_monotonic_us();
		if (rc != 0) {
			fprintf(stderr, "wfpbctl: ping: %s\n", wfpb_errmsg(c));
			wfpb_close(c);
			return 1;
		}
		printf("pong from %s: protocol %u, %s, rtt %llu us\n",
		    o->endpoint ? o->endpoint : wfpb_default_endpoint(), (unsigned)version,
		    o->client_key_path ? "IK" : "NK", (unsigned long long)(t1 - t0));
	}
	wfpb_close(c);
	return 0;
}

int
main(int argc, char **argv)
{
	struct wfpb_open_opts	o = { 0 };
	int			i;

	for (i = 1; i < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
		if (i + 1 >= argc) {
			usage();
			return 2;
		}
		if (strcmp(argv[i], "--endpoint") == 0)
			o.endpoint = argv[i + 1];
		else if (strcmp(argv[i], "--server-key") == 0)
			o.server_key_path = argv[i + 1];
		else if (strcmp(argv[i], "--client-key") == 0)
			o.client_key_path = argv[i + 1];
		else if (strcmp(argv[i], "--timeout") == 0)
			o.timeout_ms = (uint32_t)strtoul(argv[i + 1], NULL, 10);
		else {
			usage();
			return 2;
		}
	}
	if (i >= argc) {
		usage();
		return 2;
	}
	if (strcmp(argv[i], "ping") == 0)
		return cmd_ping(&o, argc - i, argv + i);
	if (strcmp(argv[i], "keygen") == 0)
		return cmd_keygen(argc - i, argv + i);
	usage();
	return 2;
}

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wfpbrokerd for POSIX: reads the configuration, loads or creates the static
 * key, and serves in the foreground (systemd Type=notify compatible).
 *
 *   wfpbrokerd [--config FILE] [--user USER]   serve
 *   wfpbrokerd keygen [--config FILE]          create the static key if missing, print the public key path
 *
 * --user USER (a name, or UID[:GID]): started as root by an init other than systemd, the
 * broker makes its runtime and state directories, gives them to USER, and becomes USER with
 * CAP_NET_ADMIN and CAP_NET_BIND_SERVICE alone, as the packaged unit has it run.
 */
#include <errno.h>
#include <getopt.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "broker.h"
#include "keyfile.h"
#include "log.h"
#include "privdrop.h"
#include "server_posix.h"

#define DEFAULT_CONFIG		"/etc/wfpbroker/wfpbroker.conf"
#define DEFAULT_ENDPOINT	"/run/wfpbroker/wfpbroker.sock"
#define DEFAULT_STATE		"/var/lib/wfpbroker"

/*
 * Exit statuses, for a supervisor (systemd's RestartPreventExitStatus=): 0 a
 * clean stop, 1 a runtime failure, 2 a usage error, EXIT_CONFIG a
 * configuration the broker refuses (sysexits' EX_CONFIG): restarting will
 * not help until someone fixes it.
 */
#define EXIT_CONFIG	78

static void
usage(FILE *f)
{
	fprintf(f, "usage: wfpbrokerd [keygen] [--config FILE] [--user USER]\n"
	    "       wfpbrokerd --help | --version\n"
	    "exit status: 0 stopped, 1 runtime failure, 2 usage error, 78 configuration refused\n");
}

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/*
 * The state directory holds the private keys and the audit log: owner-only
 * writes, world-traversable for server.pub. One that exists already must be
 * a real directory of ours that nobody else may write, or whoever made it
 * could have planted keys or swap them later.
 */
static int
prepare_state_dir(const char *dir)
{
	struct stat st;

	if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
		wfpb_log(WFPB_LOG_ERR, "mkdir %s: %s", dir, strerror(errno));
		return -1;
	}
	if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 022) != 0) {
		wfpb_log(WFPB_LOG_ERR, "state directory %s must be owned by uid %u and not group/other-writable "
		    "(and not a symbolic link)", dir, (unsigned)geteuid());
		return -1;
	}
	return 0;
}

/*
 * /proc/PID/exe of another user's process needs CAP_SYS_PTRACE (ptrace access
 * mode READ). Without it the audit's image field of such a client names the
 * reason instead of a path; say so once, at start, rather than in silence.
 */
static void
warn_if_images_unreadable(void)
{
	char			line[256];
	unsigned long long	eff = 0;
	FILE			*f = fopen("/proc/self/status", "r");
	int			found = 0;

	if (f == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (sscanf(line, "CapEff: %llx", &eff) == 1) {
			found = 1;
			break;
		}
	}
	fclose(f);
	if (found && (eff & (1ull << 19)) == 0)	/* CAP_SYS_PTRACE */
		wfpb_log(WFPB_LOG_WARN, "without CAP_SYS_PTRACE the image of another user's client cannot be read: "
		    "the audit's image field then says \"(unreadable: ...)\"");
}

/*
 * The descriptors systemd hands back at start (sd_listen_fds(3)): LISTEN_FDS
 * of them from 3 on, named by LISTEN_FDNAMES, when LISTEN_PID is this process.
 * The declared listeners stored at the last run come back this way
 * (FDSTORE=1). The variables are unset so that nothing this starts sees them.
 */
static void
inherited_fds(struct wfpb_inherited *in)
{
	const char	*pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS"), *names = getenv("LISTEN_FDNAMES");
	unsigned long	n;
	char		*end;
	unsigned	i;
	size_t		k;

	memset(in, 0, sizeof(*in));
	if (pid != NULL && fds != NULL && strtoul(pid, &end, 10) == (unsigned long)getpid() && *end == '\0' &&
	    (n = strtoul(fds, &end, 10)) > 0 && *end == '\0') {
		for (i = 0; i < n; i++) {
			int fd = 3 + (int)i;

			(void)fcntl(fd, F_SETFD, FD_CLOEXEC);
			if (i >= WFPB_INHERITED_MAX) {
				close(fd);
				continue;
			}
			in->sock[in->n] = fd;
			/* The i-th name of the colon-separated list; "" when there are fewer. */
			for (k = 0; names != NULL && names[0] != '\0' && names[k] != '\0' && names[k] != ':' &&
			    k + 1 < sizeof(in->name[0]); k++)
				in->name[in->n][k] = names[k];
			in->name[in->n][k] = '\0';
			if (names != NULL)
				names = strchr(names, ':') ? strchr(names, ':') + 1 : names + strlen(names);
			in->n++;
		}
	}
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
}

/*
 * --user: as root, the endpoint's directory and the state directory made and given to the
 * user (or already the user's), then the user with the unit's capabilities. 0, or -1 logged.
 */
static int
become_user(const char *user, const struct wfpb_config *cfg)
{
	char	run[WFPB_PATH_MAX], err[WFPB_PATH_MAX + 128], *slash;
	uid_t	uid;
	gid_t	gid;

	if (geteuid() != 0) {
		wfpb_log(WFPB_LOG_ERR, "--user %s: only root can become another user (start it as root, or without "
		    "--user as that user)", user);
		return -1;
	}
	snprintf(run, sizeof(run), "%s", cfg->endpoint);
	if ((slash = strrchr(run, '/')) != NULL && slash != run)
		*slash = '\0';
	if (wfpb__user_parse(user, &uid, &gid, err, sizeof(err)) != 0 ||
	    (slash != NULL && slash != run && wfpb__own_dir(run, 0755, uid, gid, err, sizeof(err)) != 0) ||
	    wfpb__own_dir(cfg->state_dir, 0755, uid, gid, err, sizeof(err)) != 0 ||
	    wfpb__drop_to(uid, gid, err, sizeof(err)) != 0) {
		wfpb_log(WFPB_LOG_ERR, "%s", err);
		return -1;
	}
	umask(077);	/* the unit's UMask= */
	wfpb_log(WFPB_LOG_INFO, "running as uid %u gid %u with CAP_NET_ADMIN and CAP_NET_BIND_SERVICE alone",
	    (unsigned)uid, (unsigned)gid);
	return 0;
}

int
main(int argc, char **argv)
{
	struct wfpb_config		defaults, cfg;
	struct wfpb_ini_error		err;
	struct wfpb_noise_keypair	key;
	struct wfpb_broker		b;
	struct wfpb_server_opts		opts = { 0 };
	const char			*config_path = NULL, *user = NULL;
	char				priv_path[WFPB_PATH_MAX + 16], pub_path[WFPB_PATH_MAX + 16];
	static const struct option	long_opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "user", required_argument, NULL, 'u' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int				i, opt, keygen = 0, rc;

	while ((opt = getopt_long(argc, argv, "hc:", long_opts, NULL)) != -1) {
		switch (opt) {
		case 'c': config_path = optarg; break;
		case 'u': user = optarg; break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("wfpbrokerd %s\n", WFPB_SERVICE_VERSION); return 0;
		default: usage(stderr); return 2;
		}
	}
	for (i = optind; i < argc; i++) {
		if (strcmp(argv[i], "keygen") == 0 && !keygen)
			keygen = 1;
		else {
			usage(stderr);
			return 2;
		}
	}
	if (sodium_init() < 0) {
		wfpb_log(WFPB_LOG_ERR, "libsodium failed to initialise");
		return 1;
	}
	wfpb_config_defaults(&defaults, DEFAULT_ENDPOINT, DEFAULT_STATE);
	rc = wfpb_config_load(config_path ? config_path : DEFAULT_CONFIG, &defaults, &cfg, &err);
	if (rc == WFPB_E_NOENT && config_path == NULL) {
		cfg = defaults;
	} else if (rc != 0) {
		wfpb_log(WFPB_LOG_ERR, "%s:%u: %s", config_path ? config_path : DEFAULT_CONFIG, err.line,
		    err.message);
		return rc == WFPB_E_CONFIG ? EXIT_CONFIG : 1;
	}
	if (user != NULL && become_user(user, &cfg) != 0)
		return EXIT_CONFIG;
	if (prepare_state_dir(cfg.state_dir) != 0)
		return EXIT_CONFIG;	/* a state directory the broker will not trust is the operator's to fix */
	snprintf(priv_path, sizeof(priv_path), "%s/server.key", cfg.state_dir);
	snprintf(pub_path, sizeof(pub_path), "%s/server.pub", cfg.state_dir);
	if ((rc = wfpb_keyfile_load_or_create(priv_path, pub_path, &key)) != 0) {
		wfpb_log(WFPB_LOG_ERR, "static key %s: %s", priv_path, wfpb_strerror(rc));
		wfpb_config_free(&cfg);
		return 1;
	}
	if (keygen) {
		printf("%s\n", pub_path);
		sodium_memzero(&key, sizeof(key));
		wfpb_config_free(&cfg);
		return 0;
	}
	rc = wfpb_broker_init(&b, &cfg, config_path, &key, now_ms());
	sodium_memzero(&key, sizeof(key));
	if (rc != 0) {
		wfpb_config_free(&cfg);
		return 1;
	}
	if (b.cfg.audit) {
		unsigned char	sk[64], pk[32];
		char		err2[512];

		snprintf(priv_path, sizeof(priv_path), "%s/audit.key", b.cfg.state_dir);
		snprintf(pub_path, sizeof(pub_path), "%s/audit.pub", b.cfg.state_dir);
		if ((rc = wfpb_keyfile_load_or_create_ed25519(priv_path, pub_path, sk, pk)) != 0) {
			wfpb_log(WFPB_LOG_ERR, "audit key %s: %s", priv_path, wfpb_strerror(rc));
			wfpb_broker_fini(&b);
			return 1;
		}
		rc = wfpb_broker_open_audit(&b, sk, now_ms(), err2, sizeof(err2));
		sodium_memzero(sk, sizeof(sk));
		if (rc != 0) {
			wfpb_log(WFPB_LOG_ERR, "audit log: %s", err2);
			wfpb_broker_fini(&b);
			return 1;
		}
		snprintf(pub_path, sizeof(pub_path), "%s/server.pub", b.cfg.state_dir);
	}
	{
		struct wfpb_inherited	in;
		char			err3[WFPB_PATH_MAX + 160];
		unsigned		k;

		inherited_fds(&in);
		rc = wfpb_broker_open_listeners(&b, &in, err3, sizeof(err3));
		for (k = 0; k < in.n; k++)	/* what no declared listener took */
			if (in.sock[k] != WFPB_SOCK_NONE)
				close((int)in.sock[k]);
		if (rc != 0) {
			wfpb_log(WFPB_LOG_ERR, "%s", err3);
			wfpb_broker_fini(&b);
			return 1;
		}
	}
	wfpb_log(WFPB_LOG_INFO, "server key %s", pub_path);
	warn_if_images_unreadable();
	opts.notify = 1;
	rc = wfpb_server_run(&b, &opts);
	wfpb_broker_fini(&b);
	return rc == 0 ? 0 : 1;
}

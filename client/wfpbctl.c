/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wfpbctl: command-line client of the broker.
 *
 *   wfpbctl [options] ping [--count N]
 *   wfpbctl [options] stash HEX [--keep]   prints the handle; --keep: principal lifetime
 *   wfpbctl [options] fetch HANDLE         prints the blob in hex
 *   wfpbctl [options] release HANDLE
 *   wfpbctl [options] status [--json | --prometheus]  broker counters (admin)
 *   wfpbctl [options] reload               re-read the broker's configuration (admin)
 *   wfpbctl service-pid                    the running Windows service's PID, from the SCM (any user)
 *   wfpbctl keygen --out PREFIX            writes PREFIX.key (private) and PREFIX.pub
 *   wfpbctl policy check FILE              validates a configuration/policy file offline
 *   wfpbctl settings [FILE]                the broker's effective settings and where each comes from
 *   wfpbctl audit verify FILE --pubkey KEY [--live] [--expect SEQ:HASH] | audit tail [-f] [-n N] FILE
 *   wfpbctl audit export --json [--follow [--cursor CUR] [--relp HOST:PORT ...]] FILE [--pubkey KEY] | audit verify-collected ...
 *
 * Exit status: 0 success; 1 the broker refused or failed (the message names
 * the status, e.g. "DENIED: ..."), or it could not be reached; 2 bad usage.
 *
 * options: --endpoint E  --server-key FILE  --client-key FILE (IK)  --timeout MS
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#ifdef _WIN32
#include <windows.h>
#endif

#include "audit_cmd.h"
#include "wfpb_version.h"
#include "config.h"
#include "gpo.h"
#include "json.h"
#include "keyfile.h"
#include "num.h"
#include "wfpb.h"

/* Usage to f: stdout when asked for (--help, status 0), stderr for a usage error (status 2). */
static void
usage_to(FILE *f)
{
	fprintf(f,
	    "usage: wfpbctl [--endpoint E] [--server-key FILE] [--client-key FILE] [--timeout MS] COMMAND\n"
	    "commands: ping [--count N] | stash HEX [--keep] | fetch HANDLE | release HANDLE |\n"
	    "          status [--json | --prometheus] |\n"
	    "          reload\n"
	    "       wfpbctl service-pid   (Windows: the running service's PID, for a callout; any user)\n"
	    "       wfpbctl keygen --out PREFIX\n"
	    "       wfpbctl policy check FILE\n"
	    "       wfpbctl settings [FILE]   (effective settings: Group Policy, the file or the default)\n"
	    "       wfpbctl audit verify FILE --pubkey KEY [--live] [--expect SEQ:HASH]\n"
	    "       wfpbctl audit tail [-f] [-n N] FILE\n"
	    "       wfpbctl audit export --json FILE [--pubkey KEY]\n"
	    "       wfpbctl audit export --json --follow [--cursor CUR] [--poll-ms MS] FILE\n"
	    "       wfpbctl audit export --json --follow --relp HOST:PORT [--cursor CUR] [--relp-ca CA\n"
	    "               [--relp-cert CERT --relp-key KEY] [--relp-name NAME]] [--relp-window N] [--stats] FILE\n"
	    "       wfpbctl audit verify-collected FILE... --keys DIR [--json] [--silent-after S]\n"
	    "       wfpbctl --help | --version\n");
}

static void
usage(void)
{
	usage_to(stderr);
}

/* A usage error naming the option and what it takes; returns 2, the usage exit status. */
static int
bad_number(const char *opt, const char *v, const char *what)
{
	fprintf(stderr, "wfpbctl: %s %s: %s\n", opt, v, what);
	return 2;
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

static struct wfpb_client *
connect_or_die(struct wfpb_open_opts *o)
{
	struct wfpb_client	*c;
	char			err[256];

	if (wfpb_open(o, &c, err, sizeof(err)) != 0) {
		fprintf(stderr, "wfpbctl: %s\n", err);
		exit(1);
	}
	return c;
}

/* Reports a failed call and closes the session; returns the exit status. */
static int
failed(struct wfpb_client *c, const char *what)
{
	fprintf(stderr, "wfpbctl: %s: %s\n", what, wfpb_errmsg(c));
	wfpb_close(c);
	return 1;
}

static int
parse_hex(const char *hex, uint8_t **out, size_t *len)
{
	size_t n = strlen(hex);

	/* An empty blob is passed on: the broker, not the tool, decides what is valid. */
	if (n % 2 != 0 || (*out = malloc(n / 2 + 1)) == NULL)
		return -1;
	if (sodium_hex2bin(*out, n / 2 + 1, hex, n, NULL, len, NULL) != 0 || *len != n / 2) {
		free(*out);
		return -1;
	}
	return 0;
}

static void
print_hex(const uint8_t *p, size_t len)
{
	char *hex = malloc(len * 2 + 1);

	if (hex == NULL)
		exit(1);
	sodium_bin2hex(hex, len * 2 + 1, p, len);
	printf("%s\n", hex);
	free(hex);
}

static int
parse_handle(const char *hex, uint8_t handle[WFPB_HANDLE_LEN])
{
	uint8_t	*b;
	size_t	len;

	if (parse_hex(hex, &b, &len) != 0)
		return -1;
	if (len != WFPB_HANDLE_LEN) {
		free(b);
		return -1;
	}
	memcpy(handle, b, WFPB_HANDLE_LEN);
	free(b);
	return 0;
}

static int
cmd_stash(struct wfpb_open_opts *o, int argc, char **argv)
{
	struct wfpb_client	*c;
	uint8_t			*blob, handle[WFPB_HANDLE_LEN];
	size_t			len;
	int			keep = argc == 3 && strcmp(argv[2], "--keep") == 0, rc;

	if ((argc != 2 && !keep) || parse_hex(argv[1], &blob, &len) != 0) {
		usage();
		return 2;
	}
	c = connect_or_die(o);
	rc = wfpb_stash(c, blob, len, keep ? WFPB_LIFETIME_PRINCIPAL : WFPB_LIFETIME_SESSION, handle);
	free(blob);
	if (rc != 0)
		return failed(c, "stash");
	print_hex(handle, sizeof(handle));
	wfpb_close(c);
	return 0;
}

static int
cmd_fetch_release(struct wfpb_open_opts *o, int argc, char **argv, int release)
{
	struct wfpb_client	*c;
	uint8_t			handle[WFPB_HANDLE_LEN], *blob;
	size_t			len;

	if (argc != 2 || parse_handle(argv[1], handle) != 0) {
		usage();
		return 2;
	}
	c = connect_or_die(o);
	if (release) {
		if (wfpb_release(c, handle) != 0)
			return failed(c, "release");
	} else {
		if (wfpb_fetch(c, handle, &blob, &len) != 0)
			return failed(c, "fetch");
		print_hex(blob, len);
		wfpb_free(blob);
	}
	wfpb_close(c);
	return 0;
}

/*
 * Status in Prometheus' text exposition format (version 0.0.4), for
 * node_exporter's textfile collector: one HELP and TYPE per metric, counters
 * named *_total, and wfpbroker_info carrying the labels.
 */
static void
prometheus_metric(const char *name, const char *type, const char *help, unsigned long long v)
{
	printf("# HELP wfpbroker_%s %s\n# TYPE wfpbroker_%s %s\nwfpbroker_%s %llu\n", name, help, name, type, name, v);
}

static void
print_prometheus(const struct wfpb_status_info *st)
{
	printf("# HELP wfpbroker_info The broker answering: its backend and process id.\n"
	    "# TYPE wfpbroker_info gauge\nwfpbroker_info{backend=\"%s\",pid=\"%u\"} 1\n", st->backend, st->pid);
	prometheus_metric("uptime_seconds", "gauge", "Seconds since the broker started.", st->uptime_ms / 1000u);
	prometheus_metric("sessions", "gauge", "Sessions open now.", st->sessions);
	prometheus_metric("requests_total", "counter", "Requests answered.", st->requests);
	prometheus_metric("denials_total", "counter", "Requests denied by policy.", st->denials);
	prometheus_metric("stash_entries", "gauge", "Blobs held in the stash.", st->stash_entries);
	prometheus_metric("stash_bytes", "gauge", "Bytes held in the stash.", st->stash_bytes);
	prometheus_metric("listeners", "gauge", "Listening sockets held for clients.", st->listeners);
	prometheus_metric("records_applied_total", "counter", "Redirect records applied to sockets.",
	    st->records_applied);
	prometheus_metric("audit_durable_seq", "gauge", "Sequence number of the last durable audit record.",
	    st->audit_durable_seq);
	prometheus_metric("audit_commits_total", "counter", "Audit log group commits (syncs).", st->audit_commits);
	prometheus_metric("audit_max_batch", "gauge", "Most audit records made durable by one sync.",
	    st->audit_max_batch);
	prometheus_metric("audit_broken", "gauge", "1 while the audit log cannot be written (effects refused).",
	    st->audit_broken ? 1u : 0u);
	prometheus_metric("audit_lost_total", "counter", "Audit records that could not be written since start.",
	    st->audit_lost);
	prometheus_metric("events_reported_total", "counter", "Events reported to syslog or the Event Log.",
	    st->events_reported);
	prometheus_metric("resident_memory_bytes", "gauge", "The broker's resident memory (0: unknown).",
	    st->rss_bytes);
	prometheus_metric("open_handles", "gauge", "The broker's open descriptors or handles (0: unknown).",
	    st->open_handles);
	prometheus_metric("workers", "gauge", "Threads serving sessions.", st->workers);
}

/* format 0: "key value" lines, 1: JSON, 2: Prometheus. */
static int
cmd_status(struct wfpb_open_opts *o, int format)
{
	struct wfpb_client	*c = connect_or_die(o);
	struct wfpb_status_info	st = WFPB_STATUS_INFO_INIT;

	if (wfpb_server_status(c, &st) != 0)
		return failed(c, "status");
	if (format == 2) {
		print_prometheus(&st);
		wfpb_close(c);
		return 0;
	}
	if (format == 1) {
		struct wfpb_json j;

		wfpb_json_init(&j, stdout);
		wfpb_json_obj_begin(&j, NULL);
		wfpb_json_str(&j, "backend", st.backend);
		wfpb_json_u64(&j, "uptime_ms", st.uptime_ms);
		wfpb_json_u64(&j, "sessions", st.sessions);
		wfpb_json_u64(&j, "requests", st.requests);
		wfpb_json_u64(&j, "denials", st.denials);
		wfpb_json_u64(&j, "stash_entries", st.stash_entries);
		wfpb_json_u64(&j, "stash_bytes", st.stash_bytes);
		wfpb_json_u64(&j, "listeners", st.listeners);
		wfpb_json_u64(&j, "records_applied", st.records_applied);
		wfpb_json_u64(&j, "audit_durable_seq", st.audit_durable_seq);
		wfpb_json_u64(&j, "audit_commits", st.audit_commits);
		wfpb_json_u64(&j, "audit_max_batch", st.audit_max_batch);
		wfpb_json_bool(&j, "audit_broken", st.audit_broken);
		wfpb_json_u64(&j, "audit_lost", st.audit_lost);
		wfpb_json_u64(&j, "events_reported", st.events_reported);
		wfpb_json_u64(&j, "rss_bytes", st.rss_bytes);
		wfpb_json_u64(&j, "open_handles", st.open_handles);
		wfpb_json_u64(&j, "workers", st.workers);
		wfpb_json_u64(&j, "pid", st.pid);
		wfpb_json_obj_end(&j);
		(void)wfpb_json_end(&j);
		wfpb_close(c);
		return 0;
	}
	printf("backend %s\nuptime_ms %llu\nsessions %u\nrequests %llu\ndenials %llu\n"
	    "stash_entries %u\nstash_bytes %llu\nlisteners %u\nrecords_applied %llu\n"
	    "audit_durable_seq %llu\naudit_commits %llu\naudit_max_batch %llu\naudit_broken %d\n"
	    "audit_lost %llu\nevents_reported %llu\nrss_bytes %llu\nopen_handles %u\nworkers %u\npid %u\n", st.backend,
	    (unsigned long long)st.uptime_ms, st.sessions, (unsigned long long)st.requests,
	    (unsigned long long)st.denials, st.stash_entries, (unsigned long long)st.stash_bytes, st.listeners,
	    (unsigned long long)st.records_applied, (unsigned long long)st.audit_durable_seq,
	    (unsigned long long)st.audit_commits, (unsigned long long)st.audit_max_batch, st.audit_broken,
	    (unsigned long long)st.audit_lost, (unsigned long long)st.events_reported, (unsigned long long)st.rss_bytes, st.open_handles,
	    st.workers, st.pid);
	wfpb_close(c);
	return 0;
}

static int
cmd_policy_check(int argc, char **argv)
{
	struct wfpb_config	base, cfg;
	struct wfpb_ini_error	err;
	size_t			i;
	int			rc;

	if (argc != 3 || strcmp(argv[1], "check") != 0) {
		usage();
		return 2;
	}
	wfpb_config_defaults(&base, "", "");
	if ((rc = wfpb_config_load(argv[2], &base, &cfg, &err)) != 0) {
		if (err.line > 0)
			fprintf(stderr, "wfpbctl: %s:%u: %s\n", argv[2], err.line, err.message);
		else
			fprintf(stderr, "wfpbctl: %s: %s\n", argv[2], err.message);
		return 1;
	}
	for (i = 0; i < cfg.nprincipals; i++) {
		const struct wfpb_principal	*p = &cfg.principals[i];
		const char			*sep = "";
		unsigned			b;

		printf("principal %s:", p->name);
		if (p->has_uid)
			printf(" uid=%u", p->uid);
		if (p->has_gid)
			printf(" gid=%u", p->gid);
		if (p->sid[0] != '\0')
			printf(" sid=%s", p->sid);
		if (p->has_key)
			printf(" key");
		printf(" ops=");
		for (b = 0; b < 32; b++) {
			if ((p->perms & (1u << b)) && wfpb_perm_name(1u << b) != NULL) {
				printf("%s%s", sep, wfpb_perm_name(1u << b));
				sep = ",";
			}
		}
		printf(" listen-ranges=%u connect-ranges=%u bind-ranges=%u\n", p->nlisten, p->nconnect, p->nbind);
	}
	printf("%s: ok, %zu principals\n", argv[2], cfg.nprincipals);
	wfpb_config_free(&cfg);
	return 0;
}

/* The configuration file the broker reads when nothing names another. */
static void
default_config(char *out, size_t cap)
{
#ifdef _WIN32
	const char *pd = getenv("ProgramData");

	snprintf(out, cap, "%s\\wfpbroker\\wfpbroker.conf", pd != NULL ? pd : "C:\\ProgramData");
#else
	snprintf(out, cap, "/etc/wfpbroker/wfpbroker.conf");
#endif
}

/*
 * wfpbctl settings [FILE]: the settings Group Policy may set, as the broker would take them,
 * each with where it came from: Group Policy (HKLM\SOFTWARE\Policies\wfpbroker, Windows),
 * the configuration file, or the default.
 */
static int
cmd_settings(int argc, char **argv)
{
	struct wfpb_config		base, cfg;
	struct wfpb_ini_error		err;
	struct wfpb_gpo			g;
	struct wfpb_setting_sources	src;
	char				file[WFPB_PATH_MAX], gerr[WFPB_PATH_MAX + 128], admins[512] = "", keep[32], max[32];
	const char			*file_from;
	size_t				i, n = 0;
	int				rc;

	if (argc > 2) {
		usage();
		return 2;
	}
	if (wfpb__gpo_read(&g, gerr, sizeof(gerr)) != 0) {
		fprintf(stderr, "wfpbctl: %s\n", gerr);
		return 1;
	}
	if (g.config_file[0] != '\0') {
		snprintf(file, sizeof(file), "%s", g.config_file);
		file_from = "Group Policy";
	} else if (argc == 2) {
		snprintf(file, sizeof(file), "%s", argv[1]);
		file_from = "command line";
	} else {
		default_config(file, sizeof(file));
		file_from = "default";
	}
	wfpb_config_defaults(&base, "", "");
	if ((rc = wfpb_config_load(file, &base, &cfg, &err)) == WFPB_E_NOENT) {
		cfg = base;
	} else if (rc != 0) {
		fprintf(stderr, "wfpbctl: %s:%u: %s\n", file, err.line, err.message);
		return 1;
	}
	if (wfpb_config_apply_gpo(&cfg, &base, &g, &src, gerr, sizeof(gerr)) != 0) {
		fprintf(stderr, "wfpbctl: %s\n", gerr);
		wfpb_config_free(&cfg);
		return 1;
	}
	for (i = 0; i < cfg.nprincipals; i++) {
		const struct wfpb_principal *p = &cfg.principals[i];

		if (!(p->perms & WFPB_PERM_ADMIN) || n >= sizeof(admins) - 1)
			continue;
		n += (size_t)snprintf(admins + n, sizeof(admins) - n, "%s%s%s%s%s", n ? ", " : "", p->name,
		    p->group_sid[0] ? " (group " : "", p->group_sid, p->group_sid[0] ? ")" : "");
		if (n >= sizeof(admins))
			n = sizeof(admins) - 1;
	}
	snprintf(keep, sizeof(keep), "%u", (unsigned)cfg.audit_keep_files);
	snprintf(max, sizeof(max), "%llu", (unsigned long long)(cfg.audit_max_bytes / 1024u));
	printf("%-18s %-48s %s\n", "setting", "value", "from");
	printf("%-18s %-48s %s%s\n", "configuration", file, file_from, rc == WFPB_E_NOENT ? " (absent: defaults)" : "");
	printf("%-18s %-48s %s\n", "admin", admins[0] ? admins : "(nobody)", wfpb_setting_source_name(src.admin_group));
	printf("%-18s %-48s %s\n", "backend", cfg.backend, wfpb_setting_source_name(src.backend));
	printf("%-18s %-48s %s\n", "audit_log", cfg.audit_log[0] ? cfg.audit_log : "(state directory)/audit.log",
	    wfpb_setting_source_name(src.audit_log));
	printf("%-18s %-48s %s\n", "audit_keep_files", keep, wfpb_setting_source_name(src.audit_keep_files));
	printf("%-18s %-48s %s\n", "audit_max_kib", max, wfpb_setting_source_name(src.audit_max_bytes));
	wfpb_config_free(&cfg);
	return 0;
}

static int
cmd_reload(struct wfpb_open_opts *o)
{
	struct wfpb_client	*c = connect_or_die(o);
	uint32_t		n;

	if (wfpb_reload(c, &n) != 0)
		return failed(c, "reload");
	printf("reloaded: %u principals\n", n);
	wfpb_close(c);
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
	uint32_t		count = 1, i;
	int			rc;

	if (argc == 3 && strcmp(argv[1], "--count") == 0) {
		if (wfpb_parse_u32(argv[2], 1, 1000000, &count) != 0)
			return bad_number("--count", argv[2], "not a number of pings (1..1000000)");
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

/*
 * The PID a connect-redirect callout names in localRedirectTargetPID: the
 * service's, from the SCM, which any user may ask (SERVICE_QUERY_STATUS). It
 * changes at every start; docs/CALLOUTS.md says how to notice.
 */
static int
cmd_service_pid(void)
{
#ifdef _WIN32
	SERVICE_STATUS_PROCESS	st;
	SC_HANDLE		scm, svc;
	DWORD			need = 0;
	int			rc = 1;

	if ((scm = OpenSCManagerW(NULL, NULL, SC_MANAGER_CONNECT)) == NULL) {
		fprintf(stderr, "wfpbctl: service-pid: cannot reach the SCM (error %lu)\n", GetLastError());
		return 1;
	}
	if ((svc = OpenServiceW(scm, L"wfpbroker", SERVICE_QUERY_STATUS)) == NULL) {
		fprintf(stderr, "wfpbctl: service-pid: no service wfpbroker (error %lu)\n", GetLastError());
	} else {
		if (!QueryServiceStatusEx(svc, SC_STATUS_PROCESS_INFO, (BYTE *)&st, sizeof(st), &need))
			fprintf(stderr, "wfpbctl: service-pid: error %lu\n", GetLastError());
		else if (st.dwCurrentState != SERVICE_RUNNING || st.dwProcessId == 0)
			fprintf(stderr, "wfpbctl: service-pid: the service is not running\n");
		else {
			printf("%lu\n", (unsigned long)st.dwProcessId);
			rc = 0;
		}
		CloseServiceHandle(svc);
	}
	CloseServiceHandle(scm);
	return rc;
#else
	fprintf(stderr, "wfpbctl: service-pid: a Windows command (the broker's PID matters only to a WFP callout)\n");
	return 2;
#endif
}

int
main(int argc, char **argv)
{
	static const struct option global_opts[] = {
		{ "endpoint", required_argument, NULL, 'e' },
		{ "server-key", required_argument, NULL, 'k' },
		{ "client-key", required_argument, NULL, 'c' },
		{ "timeout", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct wfpb_open_opts	o = WFPB_OPEN_OPTS_INIT;
	int			i, opt;

	/* "+": options end at the command, whose own arguments follow (getopt_long, glibc and mingw-w64). */
	while ((opt = getopt_long(argc, argv, "+h", global_opts, NULL)) != -1) {
		switch (opt) {
		case 'e': o.endpoint = optarg; break;
		case 'k': o.server_key_path = optarg; break;
		case 'c': o.client_key_path = optarg; break;
		case 't':
			if (wfpb_parse_u32(optarg, 1, 3600000, &o.timeout_ms) != 0)
				return bad_number("--timeout", optarg, "not a number of milliseconds (1..3600000)");
			break;
		case 'h': usage_to(stdout); return 0;
		case 'V': printf("wfpbctl %s\n", WFPB_VERSION_STRING); return 0;
		default: usage(); return 2;
		}
	}
	i = optind;
	if (i >= argc) {
		usage();
		return 2;
	}
	if (strcmp(argv[i], "ping") == 0)
		return cmd_ping(&o, argc - i, argv + i);
	if (strcmp(argv[i], "keygen") == 0)
		return cmd_keygen(argc - i, argv + i);
	if (strcmp(argv[i], "stash") == 0)
		return cmd_stash(&o, argc - i, argv + i);
	if (strcmp(argv[i], "fetch") == 0)
		return cmd_fetch_release(&o, argc - i, argv + i, 0);
	if (strcmp(argv[i], "release") == 0)
		return cmd_fetch_release(&o, argc - i, argv + i, 1);
	if (strcmp(argv[i], "status") == 0 && argc - i == 1)
		return cmd_status(&o, 0);
	if (strcmp(argv[i], "status") == 0 && argc - i == 2 && strcmp(argv[i + 1], "--json") == 0)
		return cmd_status(&o, 1);
	if (strcmp(argv[i], "status") == 0 && argc - i == 2 && strcmp(argv[i + 1], "--prometheus") == 0)
		return cmd_status(&o, 2);
	if (strcmp(argv[i], "policy") == 0)
		return cmd_policy_check(argc - i, argv + i);
	if (strcmp(argv[i], "settings") == 0)
		return cmd_settings(argc - i, argv + i);
	if (strcmp(argv[i], "audit") == 0) {
		int rc = wfpbctl_audit(argc - i - 1, argv + i + 1);

		if (rc == 2)
			usage();
		return rc;
	}
	if (strcmp(argv[i], "reload") == 0 && argc - i == 1)
		return cmd_reload(&o);
	if (strcmp(argv[i], "service-pid") == 0 && argc - i == 1)
		return cmd_service_pid();
	usage();
	return 2;
}

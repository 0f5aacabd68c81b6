/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wfpbrokerd.exe: the broker on Windows.
 *
 *   wfpbrokerd.exe [--service] [--config FILE]  run under the SCM (what the installed service runs)
 *   wfpbrokerd.exe --console [--config FILE]    serve in the foreground (Ctrl+C stops)
 *   wfpbrokerd.exe install [--config FILE]      register the service
 *   wfpbrokerd.exe uninstall                    stop and remove it
 *   wfpbrokerd.exe start                        start the installed service, wait for RUNNING
 *   wfpbrokerd.exe reload                       SERVICE_CONTROL_PARAMCHANGE: it re-reads its configuration
 *   wfpbrokerd.exe keygen [--config FILE]       create the static key if missing
 *   wfpbrokerd.exe purge                        delete the default state directory (MSI PURGE=1)
 *
 * Default configuration: %ProgramData%\wfpbroker\wfpbroker.conf; state
 * (keys, audit log) in %ProgramData%\wfpbroker\, created with an explicit DACL.
 */
#include <winsock2.h>
#include <windows.h>
#include <sddl.h>
#include <shlobj.h>
#include <knownfolders.h>

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "broker.h"
#include "gpo.h"
#include "keyfile.h"
#include "secure_win.h"
#include "selftest_win.h"
#include "log.h"
#include "pipe_server.h"
#include "provision_win.h"
#include "service_win.h"

/*
 * Under ProtectedPrefix\Administrators: only an administrator (or SYSTEM) may create a name
 * there, so no standard user can take the service's name while it is stopped (docs/DECISIONS.md).
 * libwfpb's default (client/lib/transport_win.c) is the same name.
 */
#define DEFAULT_PIPE	"\\\\.\\pipe\\ProtectedPrefix\\Administrators\\wfpbroker\\broker"
/* State directory: SYSTEM and Administrators full; Users may read (server.pub). */
/* Owned by Administrators, protected from inheritance: SYSTEM and Administrators full, Users list and read. */
#define STATE_SDDL	L"O:BAD:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;;FRFX;;;BU)"
/* What a private key that others could read is reset to (keyfile_win.c creates them so). */
#define SECRET_SDDL	L"D:P(A;;FA;;;SY)(A;;FA;;;BA)(A;;FA;;;OW)"

static struct wfpb_pipe_server	*running;
static volatile LONG		stop_requested;
static CRITICAL_SECTION		running_lock;

static void
stop_broker(void)
{
	EnterCriticalSection(&running_lock);
	InterlockedExchange(&stop_requested, 1);
	if (running != NULL)
		wfpb_pipe_server_stop(running);
	LeaveCriticalSection(&running_lock);
}

static void
reload_broker(void)
{
	EnterCriticalSection(&running_lock);
	if (running != NULL)
		wfpb_pipe_server_reload(running);
	LeaveCriticalSection(&running_lock);
}

static BOOL WINAPI
on_console_ctrl(DWORD type)
{
	(void)type;
	stop_broker();
	return TRUE;
}

static void
usage_to(FILE *f)
{
	fprintf(f, "usage: wfpbrokerd.exe [--service | --console] [--config FILE]\n"
	    "       wfpbrokerd.exe install [--config FILE] | uninstall | start | reload | keygen [--config FILE]\n"
	    "       wfpbrokerd.exe purge   (delete %%ProgramData%%\\wfpbroker: keys, configuration, audit log)\n"
	    "       wfpbrokerd.exe selftest [--json FILE]   (as an administrator: what this Windows answers)\n"
	    "       wfpbrokerd.exe --help | --version\n");
}

static void
usage(void)
{
	usage_to(stderr);
}

/* The ProgramData folder from the shell, not the environment: a service's environment differs from a user's. */
static void
program_data(char *out, size_t cap)
{
	PWSTR path = NULL;

	if (SHGetKnownFolderPath(&FOLDERID_ProgramData, 0, NULL, &path) != S_OK ||
	    WideCharToMultiByte(CP_UTF8, 0, path, -1, out, (int)cap, NULL, NULL) == 0)
		snprintf(out, cap, "C:\\ProgramData");
	CoTaskMemFree(path);
}

/*
 * Refuses to go on with a path someone other than SYSTEM, Administrators or
 * the service itself owns or may modify (a standard user who made
 * %ProgramData%\wfpbroker first would control the keys and the policy). A
 * private key others may read has its DACL put back. Missing paths pass
 * (they are created with their DACL). 0, or -1 after the Event Log error.
 */
static int
check_state_path(const char *path, int secret)
{
	struct wfpb_sd_facts	f;
	char			self[WFPB_SID_MAX] = "", why[256];
	unsigned long		err;
	int			verdict;

	if ((err = wfpb__sd_facts_read(path, &f)) == ERROR_FILE_NOT_FOUND || err == ERROR_PATH_NOT_FOUND)
		return 0;
	if (err != 0 || wfpb__sd_self(self, sizeof(self)) != 0) {
		wfpb_log(WFPB_LOG_ERR, "%s: cannot read its owner and DACL (error %lu)", path, err);
		wfpb_event(WFPB_EVENT_STATE, "%s: cannot read its owner and DACL (error %lu)", path, err);
		return -1;
	}
	verdict = wfpb__sd_trusted(&f, self, secret, why, sizeof(why));
	if (verdict == WFPB_SD_READERS) {
		err = wfpb__sd_reset(path, SECRET_SDDL);
		wfpb_log(WFPB_LOG_WARN, "%s %s: its DACL was %s; if others read it, make a new key", path, why,
		    err == 0 ? "reset to SYSTEM and Administrators" : "not reset");
		return 0;
	}
	if (verdict != WFPB_SD_OK) {
		wfpb_log(WFPB_LOG_ERR, "%s %s: refusing to start", path, why);
		wfpb_event(WFPB_EVENT_STATE, "%s %s", path, why);
		return -1;
	}
	return 0;
}

static int
prepare_state_dir(const char *dir)
{
	SECURITY_ATTRIBUTES	sa = { .nLength = sizeof(sa) };
	wchar_t			wdir[MAX_PATH];
	DWORD			err = 0;

	if (MultiByteToWideChar(CP_UTF8, 0, dir, -1, wdir, MAX_PATH) <= 0)
		return -1;
	if (!ConvertStringSecurityDescriptorToSecurityDescriptorW(STATE_SDDL, SDDL_REVISION_1,
	    &sa.lpSecurityDescriptor, NULL))
		return -1;
	if (!CreateDirectoryW(wdir, &sa))
		err = GetLastError();
	LocalFree(sa.lpSecurityDescriptor);
	if (err != 0 && err != ERROR_ALREADY_EXISTS) {
		wfpb_log(WFPB_LOG_ERR, "create %s: error %lu", dir, err);
		return -1;
	}
	/* One that existed already may have been made by anyone: it must be ours alone. */
	return check_state_path(dir, 0);
}

/* The key files in the state directory, and the configuration, before any is read. */
static int
check_state_files(const char *dir, const char *conf)
{
	static const struct {
		const char	*name;
		int		secret;
	} files[] = { { "server.key", 1 }, { "server.pub", 0 }, { "audit.key", 1 }, { "audit.pub", 0 } };
	char	path[WFPB_PATH_MAX + 16];
	size_t	i;

	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s\\%s", dir, files[i].name);
		if (check_state_path(path, files[i].secret) != 0)
			return -1;
	}
	return conf != NULL && conf[0] != '\0' ? check_state_path(conf, 0) : 0;
}

/*
 * Why a start failed, as the exit status of --console and the SERVICE_EXIT_CODE the SCM shows
 * (docs/OPERATIONS.md): 78 is EX_CONFIG, as the Linux daemon exits for a refused configuration.
 */
enum { START_CONFIG = 78, START_STATE = 2, START_BROKER = 3, START_AUDIT = 4, START_PIPE = 5 };

/*
 * Loads the configuration (the default file may be absent). Nothing is read
 * before it is judged: the default state directory (where the default file
 * lives) and the file itself pass check_state_path first. Returns 0, or
 * START_STATE / START_CONFIG after logging why.
 */
static int load_file(const char *config_path, struct wfpb_config *cfg, struct wfpb_config *defaults, char *conf_used,
    size_t cap);

/*
 * The configuration, then Group Policy over it (HKLM\SOFTWARE\Policies\wfpbroker, gpo.h),
 * which takes precedence: its ConfigFile over any other path, its settings over the file's. A
 * policy that cannot be applied as written stops the start (START_CONFIG), as a refused file
 * does. Returns 0, START_STATE or START_CONFIG after logging why.
 */
static int
load_config(const char *config_path, struct wfpb_config *cfg, char *conf_used, size_t cap)
{
	struct wfpb_config		defaults;
	struct wfpb_gpo			g;
	struct wfpb_setting_sources	src;
	char				err[WFPB_PATH_MAX + 128];
	int				rc;

	if (wfpb__gpo_read(&g, err, sizeof(err)) != 0) {
		wfpb_log(WFPB_LOG_ERR, "%s", err);
		return START_CONFIG;
	}
	if ((rc = load_file(g.config_file[0] ? g.config_file : config_path, cfg, &defaults, conf_used, cap)) != 0)
		return rc;
	if (wfpb_config_apply_gpo(cfg, &defaults, &g, &src, err, sizeof(err)) != 0) {
		wfpb_log(WFPB_LOG_ERR, "%s", err);
		return START_CONFIG;
	}
	if (g.config_file[0] || g.backend[0] || g.audit_log[0] || g.has_keep_files || g.has_max_kib || g.admin_group[0])
		wfpb_log(WFPB_LOG_INFO, "Group Policy sets%s%s%s%s%s%s (wfpbctl settings shows each)",
		    g.config_file[0] ? " the configuration file" : "", g.backend[0] ? " the backend" : "",
		    g.audit_log[0] ? " the audit log" : "", g.has_keep_files ? " audit_keep_files" : "",
		    g.has_max_kib ? " audit_max_kib" : "", g.admin_group[0] ? " the admin group" : "");
	return 0;
}

static int
load_file(const char *config_path, struct wfpb_config *cfg, struct wfpb_config *defaults, char *conf_used, size_t cap)
{
	struct wfpb_ini_error	err;
	char			pd[MAX_PATH], state[MAX_PATH + 16];
	int			rc;

	program_data(pd, sizeof(pd));
	snprintf(state, sizeof(state), "%s\\wfpbroker", pd);
	if (config_path != NULL)
		snprintf(conf_used, cap, "%s", config_path);
	else
		snprintf(conf_used, cap, "%s\\wfpbroker.conf", state);
	if ((config_path == NULL && prepare_state_dir(state) != 0) || check_state_path(conf_used, 0) != 0)
		return START_STATE;
	wfpb_config_defaults(defaults, DEFAULT_PIPE, state);
	rc = wfpb_config_load(conf_used, defaults, cfg, &err);
	if (rc == WFPB_E_NOENT && config_path == NULL) {
		/* The first start after the MSI: the configuration its properties asked for, if any. */
		if (wfpb_provision_config(conf_used) != 0)
			return START_CONFIG;
		rc = wfpb_config_load(conf_used, defaults, cfg, &err);
	}
	if (rc == WFPB_E_NOENT && config_path == NULL) {
		*cfg = *defaults;
		return 0;
	}
	if (rc != 0) {
		wfpb_log(WFPB_LOG_ERR, "%s:%u: %s", conf_used, err.line, err.message);
		return START_CONFIG;
	}
	return 0;
}

static int
load_server_key(const struct wfpb_config *cfg, const char *conf, struct wfpb_noise_keypair *key, char *pub_path,
    size_t cap)
{
	char	priv_path[WFPB_PATH_MAX + 16];
	int	rc;

	if (prepare_state_dir(cfg->state_dir) != 0 || check_state_files(cfg->state_dir, conf) != 0)
		return 1;
	snprintf(priv_path, sizeof(priv_path), "%s\\server.key", cfg->state_dir);
	snprintf(pub_path, cap, "%s\\server.pub", cfg->state_dir);
	if ((rc = wfpb_keyfile_load_or_create(priv_path, pub_path, key)) != 0) {
		wfpb_log(WFPB_LOG_ERR, "static key %s: %s", priv_path, wfpb_strerror(rc));
		return 1;
	}
	return 0;
}

static int
open_audit(struct wfpb_broker *b)
{
	unsigned char	sk[64], pk[32];
	char		priv[WFPB_PATH_MAX + 16], pub[WFPB_PATH_MAX + 16], err[512];
	int		rc;

	if (!b->cfg.audit)
		return 0;
	snprintf(priv, sizeof(priv), "%s\\audit.key", b->cfg.state_dir);
	snprintf(pub, sizeof(pub), "%s\\audit.pub", b->cfg.state_dir);
	if ((rc = wfpb_keyfile_load_or_create_ed25519(priv, pub, sk, pk)) != 0) {
		wfpb_log(WFPB_LOG_ERR, "audit key %s: %s", priv, wfpb_strerror(rc));
		return 1;
	}
	rc = wfpb_broker_open_audit(b, sk, GetTickCount64(), err, sizeof(err));
	SecureZeroMemory(sk, sizeof(sk));
	if (rc != 0) {
		wfpb_log(WFPB_LOG_ERR, "audit log: %s", err);
		return 1;
	}
	return 0;
}

/* The broker's whole life, for --console and for the SCM alike. */
static int
run_broker(const char *config_path)
{
	struct wfpb_config		cfg;
	struct wfpb_noise_keypair	key;
	struct wfpb_broker		b;
	struct wfpb_pipe_server		*sv;
	char				conf[MAX_PATH + 64], pub_path[WFPB_PATH_MAX + 16];
	int				rc;

	if ((rc = load_config(config_path, &cfg, conf, sizeof(conf))) != 0)
		return rc;
	wfpb_service_report_starting();
	if (load_server_key(&cfg, conf, &key, pub_path, sizeof(pub_path)) != 0) {
		wfpb_config_free(&cfg);
		return START_STATE;
	}
	rc = wfpb_broker_init(&b, &cfg, conf, &key, GetTickCount64());
	sodium_memzero(&key, sizeof(key));
	if (rc != 0) {
		wfpb_config_free(&cfg);
		return START_BROKER;
	}
	wfpb_service_report_starting();
	if (open_audit(&b) != 0) {
		wfpb_broker_fini(&b);
		return START_AUDIT;
	}
	{
		char err[WFPB_PATH_MAX + 160];

		/* Nothing survives a Windows service's restart: they are opened anew (docs/DECISIONS.md). */
		if (wfpb_broker_open_listeners(&b, NULL, err, sizeof(err)) != 0) {
			wfpb_log(WFPB_LOG_ERR, "%s", err);
			wfpb_broker_fini(&b);
			return START_BROKER;
		}
	}
	wfpb_log(WFPB_LOG_INFO, "server key %s", pub_path);
	/* The first pipe instance exists before RUNNING is reported: no squatting window. */
	if ((rc = wfpb_pipe_server_new(&b, &sv)) != 0) {
		wfpb_broker_fini(&b);
		return START_PIPE;
	}
	EnterCriticalSection(&running_lock);
	running = sv;
	if (stop_requested)
		wfpb_pipe_server_stop(sv);
	LeaveCriticalSection(&running_lock);
	wfpb_service_report_running();
	rc = wfpb_pipe_server_run(sv);
	EnterCriticalSection(&running_lock);
	running = NULL;
	LeaveCriticalSection(&running_lock);
	wfpb_pipe_server_free(sv);
	wfpb_broker_fini(&b);
	return rc == 0 ? 0 : 1;
}

int
main(int argc, char **argv)
{
	struct wfpb_config		cfg;
	struct wfpb_noise_keypair	key;
	const char			*config_path = NULL, *cmd = NULL;
	char				conf[MAX_PATH + 64], pub_path[WFPB_PATH_MAX + 16];
	static const struct option	long_opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "console", no_argument, NULL, 'C' },
		{ "service", no_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	WSADATA				wsa;
	int				i, opt, console = 0, service = 0, rc;

	if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		usage_to(stdout);
		return 0;
	}
	if (argc == 2 && strcmp(argv[1], "--version") == 0) {
		printf("wfpbrokerd %s\n", WFPB_SERVICE_VERSION);
		return 0;
	}
	if (argc >= 2 && (strcmp(argv[1], "selftest") == 0 || strcmp(argv[1], "selftest-child") == 0)) {
		const char *json = NULL;

		if (WSAStartup(MAKEWORD(2, 2), &wsa) != 0)
			return 1;
		setvbuf(stdout, NULL, _IONBF, 0);
		if (strcmp(argv[1], "selftest-child") == 0)
			return argc == 3 ? wfpb_selftest_child(argv[2]) : 2;
		if (argc == 4 && strcmp(argv[2], "--json") == 0)
			json = argv[3];
		else if (argc != 2) {
			usage();
			return 2;
		}
		return wfpb_selftest(json);
	}
	/* The command comes first (as the SCM and the MSI call it), its options after it. */
	i = 1;
	if (argc > 1 && (strcmp(argv[1], "keygen") == 0 || strcmp(argv[1], "install") == 0 ||
	    strcmp(argv[1], "uninstall") == 0 || strcmp(argv[1], "start") == 0 || strcmp(argv[1], "purge") == 0 ||
	    strcmp(argv[1], "reload") == 0))
		cmd = argv[i++];
	optind = i;
	while ((opt = getopt_long(argc, argv, "+h", long_opts, NULL)) != -1) {
		switch (opt) {
		case 'c': config_path = optarg; break;
		case 'C': console = 1; break;
		case 'S': service = 1; break;
		case 'h': usage_to(stdout); return 0;
		case 'V': printf("wfpbrokerd %s\n", WFPB_SERVICE_VERSION); return 0;
		default: usage(); return 2;
		}
	}
	if (optind != argc) {
		usage();
		return 2;
	}
	if (sodium_init() < 0 || WSAStartup(MAKEWORD(2, 2), &wsa) != 0)
		return 1;
	InitializeCriticalSection(&running_lock);
	if (cmd != NULL && strcmp(cmd, "install") == 0) {
		if ((rc = wfpb_service_install(config_path)) != 0) {
			fprintf(stderr, "wfpbrokerd: install: error %d%s\n", rc,
			    rc == ERROR_SERVICE_EXISTS ? " (already installed)" :
			    rc == ERROR_ACCESS_DENIED ? " (run as an administrator)" : "");
			return 1;
		}
		printf("service wfpbroker installed\n");
		return 0;
	}
	if (cmd != NULL && strcmp(cmd, "uninstall") == 0) {
		if ((rc = wfpb_service_uninstall()) != 0) {
			fprintf(stderr, "wfpbrokerd: uninstall: error %d\n", rc);
			return 1;
		}
		printf("service wfpbroker removed\n");
		return 0;
	}
	if (cmd != NULL && strcmp(cmd, "start") == 0) {
		if ((rc = wfpb_service_start()) != 0) {
			fprintf(stderr, "wfpbrokerd: start: error %d\n", rc);
			return 1;
		}
		printf("service wfpbroker running\n");
		return 0;
	}
	if (cmd != NULL && strcmp(cmd, "reload") == 0) {
		if ((rc = wfpb_service_reload()) != 0) {
			fprintf(stderr, "wfpbrokerd: reload: error %d%s\n", rc,
			    rc == ERROR_SERVICE_NOT_ACTIVE ? " (the service is not running)" : "");
			return 1;
		}
		printf("service wfpbroker asked to reload its configuration\n");
		return 0;
	}
	if (cmd != NULL && strcmp(cmd, "purge") == 0) {
		char pd[MAX_PATH], state[MAX_PATH + 16];

		/* Only the default directory: a state_dir named elsewhere is the administrator's to remove. */
		program_data(pd, sizeof(pd));
		snprintf(state, sizeof(state), "%s\\wfpbroker", pd);
		return wfpb_purge_state(state) == 0 ? 0 : 1;
	}
	if (cmd != NULL) {	/* keygen */
		if (load_config(config_path, &cfg, conf, sizeof(conf)) != 0)
			return 1;
		rc = load_server_key(&cfg, conf, &key, pub_path, sizeof(pub_path));
		sodium_memzero(&key, sizeof(key));
		wfpb_config_free(&cfg);
		if (rc == 0)
			printf("%s\n", pub_path);
		return rc;
	}
	if (console) {
		SetConsoleCtrlHandler(on_console_ctrl, TRUE);
		return run_broker(config_path);
	}
	(void)service;
	rc = wfpb_service_dispatch(run_broker, stop_broker, reload_broker, config_path);
	if (rc == ERROR_FAILED_SERVICE_CONTROLLER_CONNECT) {
		fprintf(stderr, "wfpbrokerd: not started by the Service Control Manager; use --console to run in "
		    "the foreground, or install\n");
		usage();
		return 2;
	}
	return rc == 0 ? 0 : 1;
}

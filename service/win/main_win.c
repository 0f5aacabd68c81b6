/*
 * wfpbrokerd.exe: the broker on Windows.
 *
 *   wfpbrokerd.exe --console [--config FILE]   serve in the foreground (Ctrl+C stops)
 *   wfpbrokerd.exe keygen [--config FILE]      create the static key if missing
 *
 * Default configuration: %ProgramData%\wfpbroker\wfpbroker.conf; state
 * (keys) in %ProgramData%\wfpbroker\, created with an explicit DACL.
 */
#include <windows.h>
#include <sddl.h>

#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "broker.h"
#include "keyfile.h"
#include "log.h"
#include "pipe_server.h"

#define DEFAULT_PIPE	"\\\\.\\pipe\\wfpbroker"
/* State directory: SYSTEM and Administrators full; Users may read (server.pub). */
#define STATE_SDDL	L"D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;;FRFX;;;BU)"

static struct wfpb_pipe_server *running;

static BOOL WINAPI
on_console_ctrl(DWORD type)
{
	(void)type;
	if (running != NULL)
		wfpb_pipe_server_stop(running);
	return TRUE;
}

static void
usage(void)
{
	fprintf(stderr, "usage: wfpbrokerd.exe --console [--config FILE]\n"
	    "       wfpbrokerd.exe keygen [--config FILE]\n");
}

static void
program_data(char *out, size_t cap)
{
	DWORD n = GetEnvironmentVariableA("ProgramData", out, (DWORD)cap);

	if (n == 0 || n >= cap)
		snprintf(out, cap, "C:\\ProgramData");
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
	return 0;
}

int
main(int argc, char **argv)
{
	struct wfpb_config		defaults, cfg;
	struct wfpb_ini_error		err;
	struct wfpb_noise_keypair	key;
	struct wfpb_broker		b;
	struct wfpb_pipe_server		*sv;
	const char			*config_path = NULL;
	char				pd[MAX_PATH], state[MAX_PATH + 16], conf[MAX_PATH + 32];
	char				priv_path[WFPB_PATH_MAX + 16], pub_path[WFPB_PATH_MAX + 16];
	int				i, keygen = 0, console = 0, rc;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "keygen") == 0 && i == 1)
			keygen = 1;
		else if (strcmp(argv[i], "--console") == 0)
			console = 1;
		else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
			config_path = argv[++i];
		else {
			usage();
			return 2;
		}
	}
	if (!keygen && !console) {
		usage();
		return 2;
	}
	if (sodium_init() < 0)
		return 1;
	program_data(pd, sizeof(pd));
	snprintf(state, sizeof(state), "%s\\wfpbroker", pd);
	snprintf(conf, sizeof(conf), "%s\\wfpbroker.conf", state);
	wfpb_config_defaults(&defaults, DEFAULT_PIPE, state);
	rc = wfpb_config_load(config_path ? config_path : conf, &defaults, &cfg, &err);
	if (rc == WFPB_E_NOENT && config_path == NULL) {
		cfg = defaults;
	} else if (rc != 0) {
		fprintf(stderr, "wfpbrokerd: %s:%u: %s\n", config_path ? config_path : conf, err.line, err.message);
		return 1;
	}
	if (prepare_state_dir(cfg.state_dir) != 0) {
		wfpb_config_free(&cfg);
		return 1;
	}
	snprintf(priv_path, sizeof(priv_path), "%s\\server.key", cfg.state_dir);
	snprintf(pub_path, sizeof(pub_path), "%s\\server.pub", cfg.state_dir);
	if ((rc = wfpb_keyfile_load_or_create(priv_path, pub_path, &key)) != 0) {
		fprintf(stderr, "wfpbrokerd: static key %s: %s\n", priv_path, wfpb_strerror(rc));
		wfpb_config_free(&cfg);
		return 1;
	}
	if (keygen) {
		printf("%s\n", pub_path);
		sodium_memzero(&key, sizeof(key));
		wfpb_config_free(&cfg);
		return 0;
	}
	rc = wfpb_broker_init(&b, &cfg, config_path ? config_path : conf, &key, GetTickCount64());
	sodium_memzero(&key, sizeof(key));
	if (rc != 0) {
		wfpb_config_free(&cfg);
		return 1;
	}
	if (b.cfg.audit) {
		unsigned char	sk[64], pk[32];
		char		err2[512];

		snprintf(priv_path, sizeof(priv_path), "%s\\audit.key", b.cfg.state_dir);
		snprintf(pub_path, sizeof(pub_path), "%s\\audit.pub", b.cfg.state_dir);
		if ((rc = wfpb_keyfile_load_or_create_ed25519(priv_path, pub_path, sk, pk)) != 0) {
			fprintf(stderr, "wfpbrokerd: audit key %s: %s\n", priv_path, wfpb_strerror(rc));
			wfpb_broker_fini(&b);
			return 1;
		}
		rc = wfpb_broker_open_audit(&b, sk, GetTickCount64(), err2, sizeof(err2));
		SecureZeroMemory(sk, sizeof(sk));
		if (rc != 0) {
			fprintf(stderr, "wfpbrokerd: audit log: %s\n", err2);
			wfpb_broker_fini(&b);
			return 1;
		}
		snprintf(pub_path, sizeof(pub_path), "%s\\server.pub", b.cfg.state_dir);
	}
	wfpb_log(WFPB_LOG_INFO, "version %s, server key %s, backend %s", WFPB_SERVICE_VERSION, pub_path,
	    b.cfg.backend);
	if ((rc = wfpb_pipe_server_new(&b, &sv)) != 0) {
		wfpb_broker_fini(&b);
		return 1;
	}
	running = sv;
	SetConsoleCtrlHandler(on_console_ctrl, TRUE);
	rc = wfpb_pipe_server_run(sv);
	running = NULL;
	wfpb_pipe_server_free(sv);
	wfpb_broker_fini(&b);
	return rc == 0 ? 0 : 1;
}

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Running under the Service Control Manager, and installing into it.
 *
 * The service reports START_PENDING with checkpoints while it loads keys,
 * opens the audit log and creates the first pipe instance, and RUNNING only
 * once clients can connect. Stop, shutdown and preshutdown all stop the
 * pipe server, which cancels pending I/O and drains sessions (within 5 s)
 * before STOPPED is reported.
 */
#include <windows.h>

#include <stdio.h>
#include <string.h>

#include "log.h"
#include "secure_win.h"
#include "service_win.h"

#define SERVICE_NAME	L"wfpbroker"
#define DISPLAY_NAME	L"wfpbroker WFP redirect broker"
#define DESCRIPTION	L"Performs the WFP connection-redirect ioctls for unprivileged proxies, by policy, with an audit log."

static SERVICE_STATUS_HANDLE	status_handle;
static SERVICE_STATUS		status;
static wfpb_service_run_fn	run_fn;
static wfpb_service_stop_fn	stop_fn;
static wfpb_service_stop_fn	reload_fn;
static const char		*service_config;

/*
 * exit_code ERROR_SERVICE_SPECIFIC_ERROR carries specific, the service's own code (SERVICE_STATUS:
 * dwServiceSpecificExitCode is read only with that dwWin32ExitCode).
 */
static void
report_code(DWORD state, DWORD exit_code, DWORD specific, DWORD wait_hint)
{
	static DWORD checkpoint = 1;

	status.dwServiceType = SERVICE_WIN32_OWN_PROCESS;
	status.dwCurrentState = state;
	status.dwWin32ExitCode = exit_code;
	status.dwServiceSpecificExitCode = exit_code == ERROR_SERVICE_SPECIFIC_ERROR ? specific : 0;
	status.dwWaitHint = wait_hint;
	status.dwControlsAccepted = state == SERVICE_RUNNING ?
	    SERVICE_ACCEPT_STOP | SERVICE_ACCEPT_SHUTDOWN | SERVICE_ACCEPT_PRESHUTDOWN | SERVICE_ACCEPT_PARAMCHANGE : 0;
	status.dwCheckPoint = (state == SERVICE_RUNNING || state == SERVICE_STOPPED) ? 0 : checkpoint++;
	SetServiceStatus(status_handle, &status);
}

static void
report(DWORD state, DWORD exit_code, DWORD wait_hint)
{
	report_code(state, exit_code, 0, wait_hint);
}

void
wfpb_service_report_stopping(void)
{
	if (status_handle != NULL)
		report(SERVICE_STOP_PENDING, NO_ERROR, 6000);
}

void
wfpb_service_report_starting(void)
{
	if (status_handle != NULL)
		report(SERVICE_START_PENDING, NO_ERROR, 10000);
}

void
wfpb_service_report_running(void)
{
	if (status_handle != NULL)
		report(SERVICE_RUNNING, NO_ERROR, 0);
}

static DWORD WINAPI
control_handler(DWORD control, DWORD type, void *data, void *context)
{
	(void)type;
	(void)data;
	(void)context;
	switch (control) {
	case SERVICE_CONTROL_STOP:
	case SERVICE_CONTROL_SHUTDOWN:
	case SERVICE_CONTROL_PRESHUTDOWN:
		report(SERVICE_STOP_PENDING, NO_ERROR, 6000);
		stop_fn();
		return NO_ERROR;
	case SERVICE_CONTROL_PARAMCHANGE:	/* `sc control wfpbroker paramchange`: reload, as SIGHUP */
		reload_fn();
		return NO_ERROR;
	case SERVICE_CONTROL_INTERROGATE:
		return NO_ERROR;
	}
	return ERROR_CALL_NOT_IMPLEMENTED;
}

static void configure_self(void);
static void drop_privileges(void);

static void WINAPI
service_main(DWORD argc, LPWSTR *argv)
{
	int rc;

	(void)argc;
	(void)argv;
	if ((status_handle = RegisterServiceCtrlHandlerExW(SERVICE_NAME, control_handler, NULL)) == NULL)
		return;
	report(SERVICE_START_PENDING, NO_ERROR, 10000);
	configure_self();
	drop_privileges();
	rc = run_fn(service_config);
	/*
	 * A failed start is a non-crash failure: the recovery actions apply to it too. Its own
	 * code (`sc query` shows it as SERVICE_EXIT_CODE) names the step that failed; the log and
	 * the Event Log carry the message.
	 */
	if (rc != 0)
		wfpb_log(WFPB_LOG_ERR, "the service stops: SERVICE_EXIT_CODE %d (docs/OPERATIONS.md names the step)",
		    rc < 0 ? -rc : rc);
	report_code(SERVICE_STOPPED, rc == 0 ? NO_ERROR : ERROR_SERVICE_SPECIFIC_ERROR, (DWORD)(rc < 0 ? -rc : rc), 0);
}

int
wfpb_service_dispatch(wfpb_service_run_fn run, wfpb_service_stop_fn stop, wfpb_service_stop_fn reload,
    const char *config_path)
{
	SERVICE_TABLE_ENTRYW table[] = {
		{ (LPWSTR)SERVICE_NAME, service_main },
		{ NULL, NULL },
	};

	run_fn = run;
	stop_fn = stop;
	reload_fn = reload;
	service_config = config_path;
	if (!StartServiceCtrlDispatcherW(table))
		return (int)GetLastError();
	return 0;
}

/*
 * The optional configuration DESIGN.md §7 asks for: description, unrestricted
 * service SID, recovery (restart after 1 s, 5 s, 30 s; reset after a day;
 * also on non-crash failures) and the required-privileges list. Applied by
 * `install`, and again by the service at every start, so a service the MSI
 * registered (wixl has no ServiceConfig) converges at its first start.
 * Failures are reported, not fatal (Wine implements only some levels).
 */
static int
apply_config2(SC_HANDLE svc, int from_service)
{
	SERVICE_DESCRIPTIONW		desc = { (LPWSTR)DESCRIPTION };
	SERVICE_SID_INFO		sid = { SERVICE_SID_TYPE_UNRESTRICTED };
	SC_ACTION			actions[3] = {
		{ SC_ACTION_RESTART, 1000 }, { SC_ACTION_RESTART, 5000 }, { SC_ACTION_RESTART, 30000 },
	};
	SERVICE_FAILURE_ACTIONSW	fa = { 86400, NULL, NULL, 3, actions };
	SERVICE_FAILURE_ACTIONS_FLAG	faf = { TRUE };
	SERVICE_REQUIRED_PRIVILEGES_INFOW priv = { (LPWSTR)WFPB_PRIVILEGES_KEPT };
	const struct {
		DWORD		level;
		void		*info;
		const char	*what;
	} levels[] = {
		{ SERVICE_CONFIG_DESCRIPTION, &desc, "description" },
		{ SERVICE_CONFIG_SERVICE_SID_INFO, &sid, "service SID" },
		{ SERVICE_CONFIG_FAILURE_ACTIONS, &fa, "recovery actions" },
		{ SERVICE_CONFIG_FAILURE_ACTIONS_FLAG, &faf, "recovery on non-crash failures" },
		{ SERVICE_CONFIG_REQUIRED_PRIVILEGES_INFO, &priv, "required privileges" },
	};
	size_t	i;
	int	failed = 0;

	for (i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
		if (ChangeServiceConfig2W(svc, levels[i].level, levels[i].info))
			continue;
		failed++;
		if (from_service)
			wfpb_log(WFPB_LOG_WARN, "service configuration: %s: error %lu", levels[i].what, GetLastError());
		else
			fprintf(stderr, "wfpbrokerd: install: %s: error %lu\n", levels[i].what, GetLastError());
	}
	return failed;
}

#define PARAMETERS_KEY	L"SYSTEM\\CurrentControlSet\\Services\\wfpbroker\\Parameters"

/* Notes (or, with set, writes) that the service's configuration was applied once. */
static int
configured(int set)
{
	HKEY	key;
	DWORD	one = 1, v = 0, len = sizeof(v);
	LONG	err;

	if (!set)
		return RegGetValueW(HKEY_LOCAL_MACHINE, PARAMETERS_KEY, L"ConfigApplied", RRF_RT_REG_DWORD, NULL, &v,
		    &len) == ERROR_SUCCESS && v == 1;
	if (RegCreateKeyExW(HKEY_LOCAL_MACHINE, PARAMETERS_KEY, 0, NULL, 0, KEY_SET_VALUE, NULL, &key, NULL) != 0)
		return 0;
	err = RegSetValueExW(key, L"ConfigApplied", 0, REG_DWORD, (const BYTE *)&one, sizeof(one));
	RegCloseKey(key);
	return err == ERROR_SUCCESS;
}

/*
 * At start: a service the MSI registered (wixl has no ServiceConfig) applies its
 * own configuration (see apply_config2) once, at its first start. After that it
 * is the administrator's: `sc failure`, `sc description` and the like are never
 * overwritten. The mark lives in the service's Parameters key, which goes with
 * the service when it is deleted, so a reinstall converges again.
 */
static void
configure_self(void)
{
	SC_HANDLE scm, svc;

	if (configured(0) || (scm = OpenSCManagerW(NULL, NULL, SC_MANAGER_CONNECT)) == NULL)
		return;
	if ((svc = OpenServiceW(scm, SERVICE_NAME, SERVICE_CHANGE_CONFIG | SERVICE_START)) != NULL) {
		/* Once, even where a level failed (Wine implements only some): it is reported, not retried. */
		(void)apply_config2(svc, 1);
		(void)configured(1);
		CloseServiceHandle(svc);
	}
	CloseServiceHandle(scm);
}

/*
 * The required-privileges list takes effect only at the next start (Microsoft's
 * SERVICE_REQUIRED_PRIVILEGES_INFO), so the running service removes every other
 * privilege from its own token itself, before it serves, from the first start on.
 */
static void
drop_privileges(void)
{
	HANDLE		tok;
	unsigned	removed = 0;
	unsigned long	err;

	if (!OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY | TOKEN_ADJUST_PRIVILEGES, &tok)) {
		wfpb_log(WFPB_LOG_WARN, "privileges: cannot open the service's token (error %lu)", GetLastError());
		return;
	}
	if ((err = wfpb__token_keep_only(tok, WFPB_PRIVILEGES_KEPT, &removed)) != 0)
		wfpb_log(WFPB_LOG_WARN, "privileges: could not remove those the service does not use (error %lu)", err);
	else
		wfpb_log(WFPB_LOG_INFO, "privileges: %u removed from the service's token; SeChangeNotifyPrivilege kept",
		    removed);
	CloseHandle(tok);
}

#define EVENTLOG_KEY	L"SYSTEM\\CurrentControlSet\\Services\\EventLog\\Application\\wfpbroker"

/* Registers wfpbrokerd.exe as the Event Log source "wfpbroker" (its message table is compiled in). */
static DWORD
register_event_source(const wchar_t *exe)
{
	HKEY	key;
	DWORD	types = EVENTLOG_ERROR_TYPE | EVENTLOG_WARNING_TYPE | EVENTLOG_INFORMATION_TYPE, err;

	err = RegCreateKeyExW(HKEY_LOCAL_MACHINE, EVENTLOG_KEY, 0, NULL, 0, KEY_SET_VALUE, NULL, &key, NULL);
	if (err != ERROR_SUCCESS)
		return err;
	err = RegSetValueExW(key, L"EventMessageFile", 0, REG_EXPAND_SZ, (const BYTE *)exe,
	    (DWORD)((wcslen(exe) + 1) * sizeof(wchar_t)));
	if (err == ERROR_SUCCESS)
		err = RegSetValueExW(key, L"TypesSupported", 0, REG_DWORD, (const BYTE *)&types, sizeof(types));
	RegCloseKey(key);
	return err;
}

int
wfpb_service_install(const char *config_path)
{
	wchar_t				exe[MAX_PATH], cmd[2 * MAX_PATH + 64], wconf[MAX_PATH];
	SC_HANDLE			scm, svc;
	DWORD				err;

	if (GetModuleFileNameW(NULL, exe, MAX_PATH) == 0)
		return (int)GetLastError();
	if (config_path != NULL) {
		MultiByteToWideChar(CP_UTF8, 0, config_path, -1, wconf, MAX_PATH);
		_snwprintf(cmd, sizeof(cmd) / sizeof(cmd[0]), L"\"%ls\" --service --config \"%ls\"", exe, wconf);
	} else {
		_snwprintf(cmd, sizeof(cmd) / sizeof(cmd[0]), L"\"%ls\" --service", exe);
	}
	cmd[sizeof(cmd) / sizeof(cmd[0]) - 1] = L'\0';
	if ((scm = OpenSCManagerW(NULL, NULL, SC_MANAGER_CREATE_SERVICE)) == NULL)
		return (int)GetLastError();
	svc = CreateServiceW(scm, SERVICE_NAME, DISPLAY_NAME, SERVICE_ALL_ACCESS, SERVICE_WIN32_OWN_PROCESS,
	    SERVICE_AUTO_START, SERVICE_ERROR_NORMAL, cmd, NULL, NULL, L"Tcpip\0BFE\0", NULL /* LocalSystem */,
	    NULL);
	if (svc == NULL) {
		err = GetLastError();
		CloseServiceHandle(scm);
		return (int)err;
	}
	(void)apply_config2(svc, 0);
	(void)configured(1);	/* install configured it: the service's first start leaves it alone */
	CloseServiceHandle(svc);
	CloseServiceHandle(scm);
	if ((err = register_event_source(exe)) != ERROR_SUCCESS)
		fprintf(stderr, "wfpbrokerd: install: event source: error %lu\n", err);
	return 0;
}

int
wfpb_service_start(void)
{
	SC_HANDLE	scm, svc;
	SERVICE_STATUS	st;
	DWORD		err = 0;
	int		i;

	if ((scm = OpenSCManagerW(NULL, NULL, SC_MANAGER_CONNECT)) == NULL)
		return (int)GetLastError();
	/*
	 * Right after an installation the SCM may not show the new service yet, or
	 * hold its database lock: ask again for 15 s.
	 */
	for (i = 0; (svc = OpenServiceW(scm, SERVICE_NAME, SERVICE_START | SERVICE_QUERY_STATUS)) == NULL; i++) {
		err = GetLastError();
		if (err != ERROR_SERVICE_DOES_NOT_EXIST || i >= 75) {
			fprintf(stderr, "wfpbrokerd: start: OpenServiceW: error %lu\n", err);
			CloseServiceHandle(scm);
			return (int)err;
		}
		Sleep(200);
	}
	err = 0;
	for (i = 0; !StartServiceW(svc, 0, NULL); i++) {
		err = GetLastError();
		if (err == ERROR_SERVICE_ALREADY_RUNNING) {
			err = 0;
			break;
		}
		if ((err != ERROR_SERVICE_DATABASE_LOCKED && err != ERROR_SERVICE_DOES_NOT_EXIST) || i >= 75) {
			fprintf(stderr, "wfpbrokerd: start: StartServiceW: error %lu after %d tries\n", err, i + 1);
			break;
		}
		Sleep(200);
		err = 0;
	}
	for (i = 0; err == 0 && i < 300 && QueryServiceStatus(svc, &st) && st.dwCurrentState != SERVICE_RUNNING; i++) {
		if (st.dwCurrentState == SERVICE_STOPPED && i > 10) {
			err = st.dwWin32ExitCode ? st.dwWin32ExitCode : ERROR_SERVICE_NOT_ACTIVE;
			break;
		}
		Sleep(100);
	}
	if (err == 0 && (!QueryServiceStatus(svc, &st) || st.dwCurrentState != SERVICE_RUNNING))
		err = ERROR_SERVICE_REQUEST_TIMEOUT;
	CloseServiceHandle(svc);
	CloseServiceHandle(scm);
	return (int)err;
}

int
wfpb_service_uninstall(void)
{
	SC_HANDLE	scm, svc;
	SERVICE_STATUS	st;
	DWORD		err = 0;
	int		i;

	if ((scm = OpenSCManagerW(NULL, NULL, SC_MANAGER_CONNECT)) == NULL)
		return (int)GetLastError();
	if ((svc = OpenServiceW(scm, SERVICE_NAME, SERVICE_STOP | SERVICE_QUERY_STATUS | DELETE)) == NULL) {
		err = GetLastError();
		CloseServiceHandle(scm);
		return (int)err;
	}
	if (ControlService(svc, SERVICE_CONTROL_STOP, &st)) {
		for (i = 0; i < 100 && QueryServiceStatus(svc, &st) && st.dwCurrentState != SERVICE_STOPPED; i++)
			Sleep(100);
	}
	if (!DeleteService(svc))
		err = GetLastError();
	CloseServiceHandle(svc);
	CloseServiceHandle(scm);
	(void)RegDeleteKeyW(HKEY_LOCAL_MACHINE, EVENTLOG_KEY);
	return (int)err;
}

int
wfpb_service_reload(void)
{
	SC_HANDLE	scm, svc;
	SERVICE_STATUS	st;
	int		rc = 0;

	if ((scm = OpenSCManagerW(NULL, NULL, SC_MANAGER_CONNECT)) == NULL)
		return (int)GetLastError();
	/* PARAMCHANGE needs SERVICE_PAUSE_CONTINUE access (ControlService). */
	if ((svc = OpenServiceW(scm, SERVICE_NAME, SERVICE_PAUSE_CONTINUE)) == NULL ||
	    !ControlService(svc, SERVICE_CONTROL_PARAMCHANGE, &st))
		rc = (int)GetLastError();
	if (svc != NULL)
		CloseServiceHandle(svc);
	CloseServiceHandle(scm);
	return rc;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* The SCM side of wfpbrokerd.exe (service_win.c). Functions return 0 or a Win32 error code. */
#ifndef WFPB_SERVICE_WIN_H
#define WFPB_SERVICE_WIN_H

/* Runs the broker until stopped; returns 0 on a clean stop. */
typedef int (*wfpb_service_run_fn)(const char *config_path);
/* Asks a running broker to stop; called from the SCM's control thread. */
typedef void (*wfpb_service_stop_fn)(void);

/* Hands the process to the SCM; ERROR_FAILED_SERVICE_CONTROLLER_CONNECT when not started by it. */
int wfpb_service_dispatch(wfpb_service_run_fn run, wfpb_service_stop_fn stop, wfpb_service_stop_fn reload,
    const char *config_path);

/* Progress reports while starting, and RUNNING once the pipe accepts clients. No-ops outside the SCM. */
void wfpb_service_report_starting(void);
void wfpb_service_report_running(void);
/* While a stop drains: STOP_PENDING with the next checkpoint, so the SCM sees it advance. */
void wfpb_service_report_stopping(void);

/*
 * Registers the service: LocalSystem, own process, auto start, depends on
 * Tcpip and BFE, unrestricted service SID, restart after 1 s, 5 s, 30 s
 * (reset after a day, also on non-crash failures), required privileges only.
 */
int wfpb_service_install(const char *config_path);

/* Stops (waiting up to 10 s) and deletes the service. */
int wfpb_service_uninstall(void);

/* Starts the installed service and waits up to 30 s for RUNNING; 0 or a Win32 error. */
int wfpb_service_start(void);

/* Sends the running service SERVICE_CONTROL_PARAMCHANGE: it re-reads its configuration. 0 or a Win32 error. */
int wfpb_service_reload(void);

#endif

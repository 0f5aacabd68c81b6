/* SPDX-License-Identifier: Apache-2.0 */
/* wfpbrokerd.exe selftest (selftest_win.c): what this Windows answers to the redirect ioctls. */
#ifndef WFPB_SELFTEST_WIN_H
#define WFPB_SELFTEST_WIN_H

/* Runs every probe, prints each, writes them as JSON to json_path (may be NULL). 0, or 1 if it could not run. */
int wfpb_selftest(const char *json_path);

/* The children the self-test starts (`selftest-child socket|query`). Returns the process exit code. */
int wfpb_selftest_child(const char *mode);

#endif

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the MSI leaves for the service's first start, and what it asks for at
 * uninstall. The MSI cannot write into the state directory (it could not
 * give the files their DACL), so it records its public properties under the
 * service's key, HKLM\SYSTEM\CurrentControlSet\Services\wfpbroker\Parameters:
 * ConfigSource (CONFIGFILE) and AdminGroup (ADMINGROUP). When the default
 * configuration file does not exist yet, the service writes it from them.
 */
#ifndef WFPB_PROVISION_WIN_H
#define WFPB_PROVISION_WIN_H

#include <stddef.h>

/*
 * Writes conf_path (inside the existing, checked state directory) when it
 * does not exist: a copy of ConfigSource if set, else a policy granting
 * `admin` to AdminGroup (a SID or an account name) if set, else nothing.
 * The file is created new, so it takes the state directory's protected DACL.
 * 0 when written or nothing was asked; -1 (logged) when asked and it failed.
 */
int wfpb_provision_config(const char *conf_path);

/*
 * `wfpbrokerd.exe purge` (the MSI's PURGE=1 at uninstall): deletes the state
 * directory's files and the directory. Reparse points are removed, never
 * followed; a state directory that is itself one is refused. 0 or -1.
 */
int wfpb_purge_state(const char *state_dir);

#endif

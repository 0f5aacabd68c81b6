/* SPDX-License-Identifier: Apache-2.0 */
/* Reading a log whole or from an offset, on both platforms: an open (fileio_*.c) and a positioned read. */
#include "fileio.h"

int
wfpb__file_read_all(const char *path, size_t max, uint8_t **out, size_t *len, int *os_err)
{
	wfpb_file	f;
	uint64_t	size;
	int		rc;

	*out = NULL;
	*len = 0;
	if ((rc = wfpb__file_open_read(path, &f, &size, os_err)) != 0)
		return rc;
	rc = size > max ? WFPB_E_LIMIT : wfpb__file_pread(f, 0, (size_t)size, out, len);
	wfpb__file_close(f);
	return rc;
}

int
wfpb__file_read_at(const char *path, uint64_t off, size_t max, uint8_t **out, size_t *len, uint64_t *size,
    int *os_err)
{
	wfpb_file	f;
	int		rc;

	*out = NULL;
	*len = 0;
	if ((rc = wfpb__file_open_read(path, &f, size, os_err)) != 0)
		return rc;
	rc = wfpb__file_pread(f, off, off >= *size ? 0 : *size - off > max ? max : (size_t)(*size - off), out, len);
	wfpb__file_close(f);
	return rc;
}

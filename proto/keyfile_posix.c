/* SPDX-License-Identifier: Apache-2.0 */
/* POSIX key file I/O: 0600 private files, 0644 public, fsync then rename. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keyfile.h"

static int
from_errno(int e)
{
	switch (e) {
	case ENOENT: return WFPB_E_NOENT;
	case EACCES: case EPERM: return WFPB_E_ACCESS;
	}
	return WFPB_E_IO;
}

int
wfpb__keyfile_read(const char *path, char *buf, size_t cap, size_t *len, int secret)
{
	struct stat	st;
	ssize_t		n;
	int		fd, rc = 0;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
		return from_errno(errno);
	if (fstat(fd, &st) != 0) {
		rc = from_errno(errno);
		goto close_fd;
	}
	/*
	 * A secret others can read is no longer a secret, and one another user
	 * owns may have been planted: refuse both, as ssh does.
	 */
	if (!S_ISREG(st.st_mode) || (secret && ((st.st_mode & 077) != 0 || st.st_uid != geteuid()))) {
		rc = WFPB_E_KEYFILE;
		goto close_fd;
	}
	n = read(fd, buf, cap);
	if (n < 0)
		rc = from_errno(errno);
	else if ((size_t)n == cap)
		rc = WFPB_E_KEYFILE;
	else
		*len = (size_t)n;
close_fd:
	close(fd);
	return rc;
}

int
wfpb__keyfile_write(const char *path, const char *data, size_t len, int secret)
{
	char	tmp[4096];
	int	fd, rc = 0, saved;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return WFPB_E_INVAL;
	(void)unlink(tmp);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, secret ? 0600 : 0644)) < 0)
		return from_errno(errno);
	/* The umask may have narrowed the public file; the mode is part of the contract. */
	if (fchmod(fd, secret ? 0600 : 0644) != 0 || write(fd, data, len) != (ssize_t)len || fsync(fd) != 0) {
		saved = errno;
		close(fd);
		(void)unlink(tmp);
		return from_errno(saved);
	}
	close(fd);
	if (rename(tmp, path) != 0) {
		rc = from_errno(errno);
		(void)unlink(tmp);
	}
	return rc;
}

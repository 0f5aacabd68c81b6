/* SPDX-License-Identifier: Apache-2.0 */
/* The audit file contract (core/fileio.h) on POSIX. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/inotify.h>
#endif

#include "fileio.h"

/* "BASE.DIGITS" after base: the digits as a number, or 0 when name is not one. */
static uint64_t
rotated_seq(const char *name, const char *base, size_t blen)
{
	const char	*p;
	uint64_t	v = 0;

	if (strncmp(name, base, blen) != 0 || name[blen] != '.' || name[blen + 1] == '\0')
		return 0;
	for (p = name + blen + 1; *p != '\0'; p++) {
		if (*p < '0' || *p > '9' || v > UINT64_MAX / 10)
			return 0;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	return v;
}

int
wfpb__file_rotated(const char *path, uint64_t *seqs, size_t cap, size_t *n, int *os_err)
{
	char		dir[4096];
	const char	*slash = strrchr(path, '/'), *base;
	struct dirent	*de;
	DIR		*d;
	uint64_t	v;

	*n = 0;
	if (slash == NULL) {
		snprintf(dir, sizeof(dir), ".");
		base = path;
	} else {
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path) ? (int)(slash - path) : 1, path);
		base = slash + 1;
	}
	if ((d = opendir(dir)) == NULL) {
		*os_err = errno;
		return WFPB_E_OS;
	}
	while ((de = readdir(d)) != NULL) {
		if ((v = rotated_seq(de->d_name, base, strlen(base))) == 0)
			continue;
		if (*n < cap)
			seqs[*n] = v;
		(*n)++;
	}
	closedir(d);
	return 0;
}

static int
os_fail(int *os_err)
{
	*os_err = errno;
	return errno == ENOENT ? WFPB_E_NOENT : WFPB_E_OS;
}

int
wfpb__file_share_group(wfpb_file f, int *os_err)
{
	if (fchmod((int)f, 0640) != 0)
		return os_fail(os_err);
	return 0;
}

int
wfpb__file_open_append(const char *path, wfpb_file *out, uint64_t *size, int *os_err)
{
	struct stat	st;
	int		fd;

	*out = WFPB_FILE_NONE;
	if ((fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600)) < 0)
		return os_fail(os_err);
	/* One writer per log: a second broker on the same file would fork the chain. */
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		*os_err = errno;
		close(fd);
		return WFPB_E_ACCESS;
	}
	if (fstat(fd, &st) != 0) {
		close(fd);
		return os_fail(os_err);
	}
	*size = (uint64_t)st.st_size;
	*out = fd;
	return 0;
}

int
wfpb__file_write(wfpb_file f, const uint8_t *p, size_t len, int *os_err)
{
	ssize_t n;

	while (len > 0) {
		n = write((int)f, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return os_fail(os_err);
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int
wfpb__file_sync(wfpb_file f, int *os_err)
{
	return fdatasync((int)f) == 0 ? 0 : os_fail(os_err);
}

int
wfpb__file_truncate(wfpb_file f, uint64_t len, int *os_err)
{
	return ftruncate((int)f, (off_t)len) == 0 ? 0 : os_fail(os_err);
}

void
wfpb__file_close(wfpb_file f)
{
	if (f != WFPB_FILE_NONE)
		close((int)f);
}

int
wfpb__file_open_read(const char *path, wfpb_file *out, uint64_t *size, int *os_err)
{
	struct stat	st;
	int		fd, rc;

	*out = WFPB_FILE_NONE;
	*size = 0;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return os_fail(os_err);
	if (fstat(fd, &st) != 0) {
		rc = os_fail(os_err);
		close(fd);
		return rc;
	}
	*out = fd;
	*size = (uint64_t)st.st_size;
	return 0;
}

int
wfpb__file_pread(wfpb_file f, uint64_t off, size_t want, uint8_t **out, size_t *len)
{
	uint8_t	*buf;
	size_t	done = 0;
	ssize_t	n;

	if ((buf = malloc(want + 1)) == NULL)
		return WFPB_E_NOMEM;
	while (done < want && (n = pread((int)f, buf + done, want - done, (off_t)(off + done))) > 0)
		done += (size_t)n;
	*out = buf;
	*len = done;
	return 0;
}

uint64_t
wfpb__wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint32_t
wfpb__process_id(void)
{
	return (uint32_t)getpid();
}

void
wfpb__process_usage(uint64_t *rss_bytes, uint32_t *open_handles)
{
	unsigned long long	size, resident;
	struct dirent		*e;
	FILE			*f;
	DIR			*d;

	*rss_bytes = 0;
	*open_handles = 0;
	if ((f = fopen("/proc/self/statm", "r")) != NULL) {
		if (fscanf(f, "%llu %llu", &size, &resident) == 2)
			*rss_bytes = resident * (unsigned long long)sysconf(_SC_PAGESIZE);
		fclose(f);
	}
	if ((d = opendir("/proc/self/fd")) != NULL) {
		while ((e = readdir(d)) != NULL)
			if (e->d_name[0] != '.')
				(*open_handles)++;
		(*open_handles)--;	/* the directory's own descriptor */
		closedir(d);
	}
}

static uint64_t durable_renames;

uint64_t
wfpb__file_durable_renames(void)
{
	return __atomic_load_n(&durable_renames, __ATOMIC_RELAXED);
}

int
wfpb__file_rename_durable(const char *from, const char *to, int *os_err)
{
	char	dir[PATH_MAX];
	char	*slash;
	int	fd;

	if (rename(from, to) != 0) {
		*os_err = errno;
		return -1;
	}
	snprintf(dir, sizeof(dir), "%s", to);
	if ((slash = strrchr(dir, '/')) == NULL)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 || fsync(fd) != 0) {
		*os_err = errno;
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	__atomic_add_fetch(&durable_renames, 1, __ATOMIC_RELAXED);
	return 0;
}

int
wfpb__file_replace(const char *tmp, const char *path, const char *data, size_t len)
{
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);

	if (fd < 0)
		return -1;
	if (write(fd, data, len) != (ssize_t)len || fsync(fd) != 0) {
		close(fd);
		unlink(tmp);
		return -1;
	}
	close(fd);
	return rename(tmp, path) == 0 ? 0 : -1;
}

int
wfpb__file_sync_stdout(void)
{
	struct stat st;

	if (fstat(1, &st) != 0 || !S_ISREG(st.st_mode))
		return 0;
	return fsync(1) == 0 ? 0 : -1;
}

struct wfpb_file_watch {
	int	fd;		/* inotify, -1 when there is none */
	char	base[256];	/* the log's name: only its own and its rotated files' events count */
};

static void
sleep_ms(unsigned ms)
{
	struct timespec ts = { (time_t)(ms / 1000u), (long)(ms % 1000u) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

struct wfpb_file_watch *
wfpb__file_watch_open(const char *path)
{
	struct wfpb_file_watch	*w = calloc(1, sizeof(*w));
	const char		*slash = strrchr(path, '/');
	char			dir[4096];

	if (w == NULL)
		return NULL;
	w->fd = -1;
	snprintf(w->base, sizeof(w->base), "%s", slash != NULL ? slash + 1 : path);
	if (slash == NULL)
		snprintf(dir, sizeof(dir), ".");
	else
		snprintf(dir, sizeof(dir), "%.*s", slash == path ? 1 : (int)(slash - path), path);
#ifdef __linux__
	if ((w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) >= 0 &&
	    inotify_add_watch(w->fd, dir, IN_MODIFY | IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE) < 0) {
		close(w->fd);
		w->fd = -1;
	}
#endif
	return w;
}

/* Takes the events queued so far; 1 when one names the log or a file beginning with its name. */
static int
drain(struct wfpb_file_watch *w)
{
	int found = 0;

#ifdef __linux__
	char	buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t	n;
	size_t	base_len = strlen(w->base);

	while ((n = read(w->fd, buf, sizeof(buf))) > 0) {
		const char *p = buf;

		while (p + sizeof(struct inotify_event) <= buf + n) {
			const struct inotify_event *e = (const struct inotify_event *)(const void *)p;

			if ((e->mask & IN_Q_OVERFLOW) || (e->len > 0 && strncmp(e->name, w->base, base_len) == 0))
				found = 1;
			p += sizeof(struct inotify_event) + e->len;
		}
	}
#else
	(void)w;
#endif
	return found;
}

void
wfpb__file_watch_wait(struct wfpb_file_watch *w, unsigned ms)
{
	struct pollfd	p;
	uint64_t	until;
	struct timespec	ts;
	int		n;

	if (w == NULL || w->fd < 0) {
		sleep_ms(ms);
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &ts);
	until = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u + ms;
	for (;;) {
		uint64_t now;

		if (drain(w))
			return;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		now = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
		if (now >= until)
			return;
		p.fd = w->fd;
		p.events = POLLIN;
		p.revents = 0;
		n = poll(&p, 1, (int)(until - now));
		if (n == 0 || (n < 0 && errno != EINTR))
			return;
	}
}

int
wfpb__file_watch_changed(struct wfpb_file_watch *w)
{
	return w != NULL && w->fd >= 0 && drain(w);
}

void
wfpb__file_watch_close(struct wfpb_file_watch *w)
{
	if (w == NULL)
		return;
	if (w->fd >= 0)
		close(w->fd);
	free(w);
}

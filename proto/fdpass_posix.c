/* SPDX-License-Identifier: Apache-2.0 */
/* SCM_RIGHTS send and receive, written once for both sides. Received control data is untrusted. */
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "fdpass_posix.h"

#define FDS_MAX	8

ssize_t
wfpb__send_fd(int sock, const uint8_t *p, size_t len, int fd, int flags)
{
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(sizeof(int))];
	} cm;
	struct iovec	iov = { .iov_base = (void *)(uintptr_t)p, .iov_len = len };
	struct msghdr	msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr	*cmsg;

	if (fd >= 0) {
		memset(&cm, 0, sizeof(cm));
		msg.msg_control = cm.buf;
		msg.msg_controllen = sizeof(cm.buf);
		cmsg = CMSG_FIRSTHDR(&msg);
		cmsg->cmsg_level = SOL_SOCKET;
		cmsg->cmsg_type = SCM_RIGHTS;
		cmsg->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
	}
	return sendmsg(sock, &msg, flags | MSG_NOSIGNAL);
}

ssize_t
wfpb__recv_fds(int sock, uint8_t *buf, size_t cap, int *fds, unsigned max, unsigned *n, int flags)
{
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(FDS_MAX * sizeof(int))];
	} cm;
	struct iovec	iov = { .iov_base = buf, .iov_len = cap };
	struct msghdr	msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.buf,
			    .msg_controllen = sizeof(cm.buf) };
	struct cmsghdr	*cmsg;
	ssize_t		got;
	size_t		i, k;
	int		fd;

	*n = 0;
	got = recvmsg(sock, &msg, flags | MSG_CMSG_CLOEXEC);
	if (got < 0)
		return got;
	for (cmsg = CMSG_FIRSTHDR(&msg); cmsg != NULL; cmsg = CMSG_NXTHDR(&msg, cmsg)) {
		if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS)
			continue;
		k = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (i = 0; i < k; i++) {
			memcpy(&fd, CMSG_DATA(cmsg) + i * sizeof(int), sizeof(int));
			if (*n < max && *n < FDS_MAX)
				fds[(*n)++] = fd;
			else
				close(fd);
		}
	}
	return got;
}

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The peer a Linux privileged helper would use instead of wfpbroker: a method
 * call through a private dbus-daemon to a small sd-bus service. The method
 * is the broker's Fetch: a 16-byte handle in, the 24-byte blob stashed under
 * it out, looked up the way the broker does (a hash table would not be
 * slower than this one-entry compare). No authentication beyond what the bus
 * does itself (SO_PEERCRED on connect, its policy check per message).
 */
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <systemd/sd-bus.h>

#include "bench.h"

#define BUS_NAME	"org.wfpbroker.Bench"
#define BUS_PATH	"/org/wfpbroker/Bench"
#define BUS_IFACE	"org.wfpbroker.Bench"

static const uint8_t	stashed_handle[16] = { 0x5a, 1, 2, 3 };
static const uint8_t	stashed_blob[24] = { 1 };

static int
method_fetch(sd_bus_message *m, void *userdata, sd_bus_error *err)
{
	const void	*h;
	size_t		len;
	int		r;

	(void)userdata;
	if ((r = sd_bus_message_read_array(m, 'y', &h, &len)) < 0)
		return r;
	if (len != sizeof(stashed_handle) || memcmp(h, stashed_handle, len) != 0)
		return sd_bus_error_set(err, "org.wfpbroker.Bench.NotFound", "no such handle");
	{
		sd_bus_message *reply = NULL;

		if ((r = sd_bus_message_new_method_return(m, &reply)) < 0)
			return r;
		if ((r = sd_bus_message_append_array(reply, 'y', stashed_blob, sizeof(stashed_blob))) >= 0)
			r = sd_bus_send(NULL, reply, NULL);
		sd_bus_message_unref(reply);
		return r;
	}
}

static const sd_bus_vtable vtable[] = {
	SD_BUS_VTABLE_START(0),
	SD_BUS_METHOD("Fetch", "ay", "ay", method_fetch, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_VTABLE_END,
};

static sd_bus *
bus_connect(const char *address)
{
	sd_bus *bus = NULL;

	if (sd_bus_new(&bus) < 0 || sd_bus_set_address(bus, address) < 0 || sd_bus_set_bus_client(bus, 1) < 0 ||
	    sd_bus_start(bus) < 0) {
		sd_bus_unref(bus);
		return NULL;
	}
	return bus;
}

static void
serve(const char *address)
{
	sd_bus		*bus = bus_connect(address);
	sd_bus_slot	*slot = NULL;

	if (bus == NULL || sd_bus_add_object_vtable(bus, &slot, BUS_PATH, BUS_IFACE, vtable, NULL) < 0 ||
	    sd_bus_request_name(bus, BUS_NAME, 0) < 0)
		_exit(1);
	for (;;) {
		int r = sd_bus_process(bus, NULL);

		if (r < 0)
			_exit(1);
		if (r == 0 && sd_bus_wait(bus, UINT64_MAX) < 0)
			_exit(1);
	}
}

/* One Fetch call: the handle as an array of bytes (sd-bus's "ay" varargs would take one byte per argument). */
static int
call_fetch(sd_bus *bus, sd_bus_message **reply)
{
	sd_bus_message	*m = NULL;
	int		r;

	if ((r = sd_bus_message_new_method_call(bus, &m, BUS_NAME, BUS_PATH, BUS_IFACE, "Fetch")) < 0)
		return r;
	if ((r = sd_bus_message_append_array(m, 'y', stashed_handle, sizeof(stashed_handle))) >= 0)
		r = sd_bus_call(bus, m, 0, NULL, reply);
	sd_bus_message_unref(m);
	return r;
}

int
dbus_peer_start(struct dbus_peer *p, const char *dir)
{
	char	conf[256], sock[200];
	FILE	*f;
	int	i;

	snprintf(conf, sizeof(conf), "%s/bus.conf", dir);
	snprintf(sock, sizeof(sock), "%s/bus.sock", dir);
	snprintf(p->address, sizeof(p->address), "unix:path=%s", sock);
	if ((f = fopen(conf, "w")) == NULL)
		return -1;
	fprintf(f, "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\"\n"
	    " \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n"
	    "<busconfig><type>session</type><listen>unix:path=%s</listen><auth>EXTERNAL</auth>\n"
	    "<policy context=\"default\"><allow send_destination=\"*\"/><allow receive_sender=\"*\"/>"
	    "<allow own=\"*\"/></policy></busconfig>\n",
	    sock);
	fclose(f);
	if ((p->daemon = fork()) == 0) {
		if (freopen("/dev/null", "w", stderr) == NULL || freopen("/dev/null", "w", stdout) == NULL)
			_exit(127);
		execlp("dbus-daemon", "dbus-daemon", "--nofork", "--config-file", conf, (char *)NULL);
		_exit(127);
	}
	for (i = 0; i < 100 && access(sock, F_OK) != 0; i++)
		usleep(20000);
	if ((p->service = fork()) == 0)
		serve(p->address);
	/* Ready when a call succeeds. */
	for (i = 0; i < 100; i++) {
		sd_bus *bus = bus_connect(p->address);
		int ok = 0;

		if (bus != NULL) {
			sd_bus_message *reply = NULL;

			(void)sd_bus_set_method_call_timeout(bus, 500000);
			ok = call_fetch(bus, &reply) >= 0;
			sd_bus_message_unref(reply);
			sd_bus_unref(bus);
		}
		if (ok)
			return 0;
		usleep(20000);
	}
	dbus_peer_stop(p);
	return -1;
}

void
dbus_peer_stop(struct dbus_peer *p)
{
	if (p->service > 0) {
		kill(p->service, SIGKILL);
		waitpid(p->service, NULL, 0);
	}
	if (p->daemon > 0) {
		kill(p->daemon, SIGTERM);
		waitpid(p->daemon, NULL, 0);
	}
	p->service = p->daemon = 0;
}

struct stats
dbus_fetch(const struct dbus_peer *p, int rounds, double *lat)
{
	sd_bus	*bus = bus_connect(p->address);
	int	i;

	if (bus == NULL)
		exit(1);
	for (i = -200; i < rounds; i++) {
		sd_bus_message	*reply = NULL;
		const void	*blob;
		size_t		len;
		double		t0 = now_s();

		if (call_fetch(bus, &reply) < 0 || sd_bus_message_read_array(reply, 'y', &blob, &len) < 0 || len != sizeof(stashed_blob))
			exit(1);
		sd_bus_message_unref(reply);
		if (i >= 0)
			lat[i] = now_s() - t0;
	}
	sd_bus_unref(bus);
	return summarize(lat, (size_t)rounds);
}

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The one status vocabulary of the backends and the net layer: what they
 * return is 0 or one of these, each the wire StatusCode it maps to (checked
 * at compile time below), so a backend's answer goes to the client without
 * translation. Answers that are not statuses (conntrack has no entry, would
 * block) are negative and private to the layer that gives them.
 */
#ifndef WFPB_STATUS_H
#define WFPB_STATUS_H

#include "wfpbroker.pb-c.h"

enum wfpb_status {
	WFPB_ST_OK = 0,
	WFPB_ST_EACCES = 1,
	WFPB_ST_EINVAL = 2,
	WFPB_ST_EOPNOTSUPP = 3,
	WFPB_ST_EFAULT = 4,
	WFPB_ST_ENOBUFS = 5,
	WFPB_ST_EADDRINUSE = 6,
	WFPB_ST_EADDRNOTAVAIL = 7,
	WFPB_ST_ECONNREFUSED = 8,
	WFPB_ST_ENETUNREACH = 9,
	WFPB_ST_ETIMEDOUT = 10,
	WFPB_ST_ECONNRESET = 11,
	WFPB_ST_EAFNOSUPPORT = 12,
	WFPB_ST_INTERNAL = 38,
};

_Static_assert((int)WFPB_ST_OK == (int)WFPBROKER__V1__STATUS_CODE__OK, "status");
_Static_assert((int)WFPB_ST_EACCES == (int)WFPBROKER__V1__STATUS_CODE__EACCES, "status");
_Static_assert((int)WFPB_ST_EINVAL == (int)WFPBROKER__V1__STATUS_CODE__EINVAL, "status");
_Static_assert((int)WFPB_ST_EOPNOTSUPP == (int)WFPBROKER__V1__STATUS_CODE__EOPNOTSUPP, "status");
_Static_assert((int)WFPB_ST_EFAULT == (int)WFPBROKER__V1__STATUS_CODE__EFAULT, "status");
_Static_assert((int)WFPB_ST_ENOBUFS == (int)WFPBROKER__V1__STATUS_CODE__ENOBUFS, "status");
_Static_assert((int)WFPB_ST_EADDRINUSE == (int)WFPBROKER__V1__STATUS_CODE__EADDRINUSE, "status");
_Static_assert((int)WFPB_ST_EADDRNOTAVAIL == (int)WFPBROKER__V1__STATUS_CODE__EADDRNOTAVAIL, "status");
_Static_assert((int)WFPB_ST_ECONNREFUSED == (int)WFPBROKER__V1__STATUS_CODE__ECONNREFUSED, "status");
_Static_assert((int)WFPB_ST_ENETUNREACH == (int)WFPBROKER__V1__STATUS_CODE__ENETUNREACH, "status");
_Static_assert((int)WFPB_ST_ETIMEDOUT == (int)WFPBROKER__V1__STATUS_CODE__ETIMEDOUT, "status");
_Static_assert((int)WFPB_ST_ECONNRESET == (int)WFPBROKER__V1__STATUS_CODE__ECONNRESET, "status");
_Static_assert((int)WFPB_ST_EAFNOSUPPORT == (int)WFPBROKER__V1__STATUS_CODE__EAFNOSUPPORT, "status");
_Static_assert((int)WFPB_ST_INTERNAL == (int)WFPBROKER__V1__STATUS_CODE__INTERNAL, "status");

#endif

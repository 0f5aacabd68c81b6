/* SPDX-License-Identifier: Apache-2.0 */
/* On the include path of the portable targets only (proto, core): an OS header there is a layering error. */
#error "<netinet/in.h> in portable code: OS calls belong to the platform targets (service/posix, service/win, the OS helpers)"

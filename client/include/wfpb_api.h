/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Public (libwfpb). Export and attribute macros. WFPB_API marks the
 * library's public functions, the only names libwfpb.so.0 and wfpb.dll
 * export (everything else is built with hidden visibility; the export list
 * itself is client/libwfpb.sym, from which the version script and the .def
 * file are made). Consumers define nothing: on Windows the import library
 * resolves the functions of wfpb.dll, and the same declarations serve the
 * static library.
 */
#ifndef WFPB_API_H
#define WFPB_API_H

#if defined(_WIN32)
#define WFPB_API
#elif defined(__GNUC__)
#define WFPB_API __attribute__((visibility("default")))
#else
#define WFPB_API
#endif

#if defined(__GNUC__)
#define WFPB_MUST_CHECK __attribute__((warn_unused_result))
#else
#define WFPB_MUST_CHECK
#endif

#endif

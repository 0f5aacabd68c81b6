#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Runs $WFPB_REAL_BROKERD under valgrind memcheck: any memory error, or a definite or indirect
# leak at exit, makes the broker exit 99, which broker_e2e.sh's graceful-stop check catches.
exec valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect \
	--show-leak-kinds=definite,indirect "${WFPB_REAL_BROKERD:?}" "$@"

# SPDX-License-Identifier: Apache-2.0
# Dependencies as imported targets: wfpb::sodium, wfpb::protobuf_c, wfpb::cmocka (and natively
# wfpb::gnutls; on Windows wfpb::uv for the tests).
# Native builds use Debian's packages through pkg-config; the Windows build uses
# the static prefix scripts/build-win-deps.sh fills (WFPB_WIN_DEPS).
if(WIN32)
  set(WFPB_WIN_DEPS "${CMAKE_SOURCE_DIR}/build/deps/win64" CACHE PATH "win64 dependency prefix")
  foreach(dep sodium protobuf-c cmocka-static)
    string(REPLACE "-static" "" name "${dep}")
    string(REPLACE "-" "_" name "${name}")
    set(lib "${WFPB_WIN_DEPS}/lib/lib${dep}.a")
    if(NOT EXISTS "${lib}")
      message(FATAL_ERROR "${lib} missing: run scripts/build-win-deps.sh (./dev.sh setup)")
    endif()
    add_library(wfpb::${name} STATIC IMPORTED)
    set_target_properties(wfpb::${name} PROPERTIES IMPORTED_LOCATION "${lib}"
      INTERFACE_INCLUDE_DIRECTORIES "${WFPB_WIN_DEPS}/include")
  endforeach()
  set_property(TARGET wfpb::cmocka PROPERTY INTERFACE_COMPILE_DEFINITIONS CMOCKA_STATIC)
  # libuv, for the test of a libuv loop on libwfpb's notice socket.
  if(WFPB_TESTS)
    set(lib "${WFPB_WIN_DEPS}/lib/libuv_a.a")
    if(NOT EXISTS "${lib}")
      message(FATAL_ERROR "${lib} missing: run scripts/build-win-deps.sh (./dev.sh setup)")
    endif()
    add_library(wfpb::uv STATIC IMPORTED)
    set_target_properties(wfpb::uv PROPERTIES IMPORTED_LOCATION "${lib}"
      INTERFACE_INCLUDE_DIRECTORIES "${WFPB_WIN_DEPS}/include"
      INTERFACE_LINK_LIBRARIES "ws2_32;iphlpapi;userenv;psapi;user32;advapi32;dbghelp;ole32;shell32;uuid")
  endif()
else()
  find_package(PkgConfig REQUIRED)
  pkg_check_modules(SODIUM REQUIRED IMPORTED_TARGET libsodium)
  pkg_check_modules(PROTOBUFC REQUIRED IMPORTED_TARGET libprotobuf-c)
  add_library(wfpb::sodium ALIAS PkgConfig::SODIUM)
  add_library(wfpb::protobuf_c ALIAS PkgConfig::PROTOBUFC)
  # TLS for the audit follower's RELP output (client/relp.c).
  pkg_check_modules(GNUTLS REQUIRED IMPORTED_TARGET gnutls)
  add_library(wfpb::gnutls ALIAS PkgConfig::GNUTLS)
  if(WFPB_TESTS)
    pkg_check_modules(CMOCKA REQUIRED IMPORTED_TARGET cmocka)
    pkg_check_modules(JANSSON REQUIRED IMPORTED_TARGET jansson)
    add_library(wfpb::cmocka ALIAS PkgConfig::CMOCKA)
    add_library(wfpb::jansson ALIAS PkgConfig::JANSSON)
  endif()
endif()

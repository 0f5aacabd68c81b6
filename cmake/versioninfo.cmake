# SPDX-License-Identifier: Apache-2.0
# wfpb_versioninfo(TARGET FILE_NAME DESCRIPTION): a VERSIONINFO resource for a Windows .exe or .dll,
# from the project version, so Explorer, the MSI and an EDR show what the binary is.
function(wfpb_versioninfo target file desc)
  if(NOT WIN32)
    return()
  endif()
  set(WFPB_RC_FILE "${file}")
  set(WFPB_RC_DESC "${desc}")
  get_filename_component(WFPB_RC_NAME "${file}" NAME_WE)
  if(file MATCHES "\\.dll$")
    set(WFPB_RC_TYPE VFT_DLL)
  else()
    set(WFPB_RC_TYPE VFT_APP)
  endif()
  set(rc ${CMAKE_CURRENT_BINARY_DIR}/${target}_version.rc)
  configure_file(${CMAKE_SOURCE_DIR}/cmake/versioninfo.rc.in ${rc} @ONLY)
  target_sources(${target} PRIVATE ${rc})
endfunction()

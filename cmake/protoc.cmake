# SPDX-License-Identifier: Apache-2.0
# Code generation with the host protoc-c for both targets; output is build output.
find_program(WFPB_PROTOC_C NAMES protoc-c protoc-gen-c REQUIRED)

function(wfpb_protoc_c out_var proto)
  get_filename_component(base "${proto}" NAME_WE)
  get_filename_component(dir "${proto}" DIRECTORY)
  set(out_c "${CMAKE_CURRENT_BINARY_DIR}/${base}.pb-c.c")
  set(out_h "${CMAKE_CURRENT_BINARY_DIR}/${base}.pb-c.h")
  add_custom_command(OUTPUT "${out_c}" "${out_h}"
    COMMAND "${WFPB_PROTOC_C}" "--c_out=${CMAKE_CURRENT_BINARY_DIR}" "-I${dir}" "${proto}"
    DEPENDS "${proto}" COMMENT "protoc-c ${base}.proto" VERBATIM)
  set(${out_var} "${out_c}" "${out_h}" PARENT_SCOPE)
endfunction()

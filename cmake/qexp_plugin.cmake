# qexp_add_plugin(<name> SOURCES <file>... [LIBRARIES <target>...] [OUTPUT_DIRECTORY <dir>] [NO_INSTALL])
#
# Builds a quantizer plugin: a shared module that exports `qexp_plugin_entry` and links libqexp.
# The same function serves the qexp tree and out-of-tree plugins built with find_package(qexp).
function(qexp_add_plugin name)
  cmake_parse_arguments(arg "NO_INSTALL" "OUTPUT_DIRECTORY" "SOURCES;LIBRARIES" ${ARGN})
  if(NOT arg_SOURCES)
    message(FATAL_ERROR "qexp_add_plugin(${name}): SOURCES is required")
  endif()
  add_library(${name} MODULE ${arg_SOURCES})
  target_link_libraries(${name} PRIVATE qexp::qexp ${arg_LIBRARIES})
  # Only the entry point is exported: two plugins with equal internal names must not collide.
  set_target_properties(${name} PROPERTIES
    PREFIX "libqexp-"
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  if(arg_OUTPUT_DIRECTORY)
    set_target_properties(${name} PROPERTIES LIBRARY_OUTPUT_DIRECTORY "${arg_OUTPUT_DIRECTORY}")
  elseif(DEFINED QEXP_PLUGIN_OUTPUT_DIR)
    set_target_properties(${name} PROPERTIES LIBRARY_OUTPUT_DIRECTORY "${QEXP_PLUGIN_OUTPUT_DIR}")
  endif()
  set_property(GLOBAL APPEND PROPERTY QEXP_PLUGIN_TARGETS ${name})
  if(NOT arg_NO_INSTALL AND DEFINED QEXP_INSTALL_PLUGIN_DIR)
    install(TARGETS ${name} LIBRARY DESTINATION "${QEXP_INSTALL_PLUGIN_DIR}")
  endif()
endfunction()

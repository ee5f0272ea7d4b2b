# The command-line tool's man page and bash completion, built and installed with it.

# The man page, from the CLI reference (one source for both), when go-md2man (Debian's
# go-md2man, a small converter) is installed; without it the build goes on without the page.
find_program(SSLSTREAM_GO_MD2MAN go-md2man)
if(SSLSTREAM_GO_MD2MAN)
  set(SSLSTREAM_MAN_PAGE ${PROJECT_BINARY_DIR}/sslstream.1)
  add_custom_command(OUTPUT ${SSLSTREAM_MAN_PAGE}
    COMMAND ${CMAKE_COMMAND} -DIN=${PROJECT_SOURCE_DIR}/docs/sslstream.md
      -DOUT=${PROJECT_BINARY_DIR}/sslstream.1.md -DVERSION=${PROJECT_VERSION}
      -P ${PROJECT_SOURCE_DIR}/cmake/man_source.cmake
    COMMAND ${SSLSTREAM_GO_MD2MAN} -in ${PROJECT_BINARY_DIR}/sslstream.1.md
      -out ${SSLSTREAM_MAN_PAGE}
    DEPENDS ${PROJECT_SOURCE_DIR}/docs/sslstream.md ${PROJECT_SOURCE_DIR}/cmake/man_source.cmake
    COMMENT "Man page sslstream.1 from docs/sslstream.md" VERBATIM)
  add_custom_target(sslstream_man_page ALL DEPENDS ${SSLSTREAM_MAN_PAGE})
  install(FILES ${SSLSTREAM_MAN_PAGE} DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
else()
  message(STATUS "go-md2man not found: no man page (apt-get install go-md2man)")
endif()

# Bash completion goes where bash-completion looks for it: the completionsdir its pkg-config
# file names (taken relative to the prefix, so `cmake --install --prefix` still works), else
# the standard share/bash-completion/completions.
set(SSLSTREAM_BASH_COMPLETION_DIR ${CMAKE_INSTALL_DATADIR}/bash-completion/completions)
find_package(PkgConfig QUIET)
if(PKG_CONFIG_FOUND)
  execute_process(COMMAND ${PKG_CONFIG_EXECUTABLE}
    --define-variable=prefix=${CMAKE_INSTALL_PREFIX} --variable=completionsdir bash-completion
    OUTPUT_VARIABLE dir OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE failed ERROR_QUIET)
  if(NOT failed AND dir MATCHES "^${CMAKE_INSTALL_PREFIX}/")
    file(RELATIVE_PATH SSLSTREAM_BASH_COMPLETION_DIR ${CMAKE_INSTALL_PREFIX} ${dir})
  endif()
endif()
install(FILES ${PROJECT_SOURCE_DIR}/tools/sslstream.bash-completion
  DESTINATION ${SSLSTREAM_BASH_COMPLETION_DIR} RENAME sslstream)

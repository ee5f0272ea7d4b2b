# `cpack -G DEB` in the build directory makes sslstream_VERSION_ARCH.deb: one package with the
# command-line tool, its man page and bash completion, and the library for developers (static
# library, headers, CMake package and pkg-config file), installed under /usr.

# The licence goes in as the Debian copyright file. The source tree has no LICENSE yet: the
# copyright file then says so instead of naming a licence nobody chose.
set(license_file ${PROJECT_SOURCE_DIR}/LICENSE)
if(EXISTS ${license_file})
  file(READ ${license_file} text)
  string(REGEX MATCH "^[^\n]*" SSLSTREAM_LICENSE_NAME "${text}")
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${license_file})
else()
  set(SSLSTREAM_LICENSE_NAME "none-chosen")
  set(text "No licence has been chosen for sslstream yet (the source tree has no LICENSE file).")
endif()
# DEP-5 continuation lines: each indented by one space, an empty one written " .".
string(REGEX REPLACE "\n$" "" text "${text}")
string(REPLACE "\n\n" "\n.\n" text "${text}")
string(REPLACE "\n\n" "\n.\n" text "${text}")
string(REPLACE "\n" "\n " SSLSTREAM_LICENSE_TEXT " ${text}")
configure_file(${PROJECT_SOURCE_DIR}/cmake/copyright.in ${PROJECT_BINARY_DIR}/copyright @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/copyright DESTINATION ${CMAKE_INSTALL_DOCDIR})

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME sslstream)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
  "TLS streams for C++20 on OpenSSL 3, and the sslstream command-line tool")
set(CPACK_PACKAGE_DESCRIPTION
  "Allegro CL-style socket and SSL streams for C++20 on OpenSSL 3: a static library with its "
  "headers, CMake package (find_package(sslstream)) and pkg-config file, and the sslstream "
  "command-line tool (a TLS server and client for scripts, a certificate checker), with its man "
  "page and bash completion.")
set(SSLSTREAM_PACKAGE_MAINTAINER "sslstream maintainers <maintainers@sslstream.invalid>"
  CACHE STRING "The Maintainer field of the Debian package")
set(CPACK_DEBIAN_PACKAGE_MAINTAINER ${SSLSTREAM_PACKAGE_MAINTAINER})
set(CPACK_DEBIAN_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # sslstream_0.1.0_amd64.deb
# The tool's run-time libraries (libssl3, libstdc++6, ...) come from dpkg-shlibdeps (dpkg-dev);
# a program built against the library needs OpenSSL's headers and link libraries, which the
# CMake package and the pkg-config file ask for.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "libssl-dev (>= 3.0)")
# Debug information stays in the build tree (executables only: a static library keeps its
# symbols).
set(CPACK_STRIP_FILES ON)
include(CPack)

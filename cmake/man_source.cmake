# Turns docs/sslstream.md (the CLI reference, written for reading on the web) into go-md2man's
# input: its first line, the page's heading, becomes the man page's title line; `##` sections
# become man sections, upper-case as man pages have them. Keep the reference convertible: no
# HTML, headings no deeper than `###`.
# cmake -DIN=docs/sslstream.md -DOUT=sslstream.1.md -DVERSION=x.y.z -P man_source.cmake
file(READ ${IN} text)
string(REGEX REPLACE "^# [^\n]*\n" "" text "${text}")
string(REGEX MATCHALL "\n## [^\n]*" headings "${text}")
foreach(h IN LISTS headings)
  string(TOUPPER "${h}" upper)
  string(REPLACE "${h}\n" "${upper}\n" text "${text}")
endforeach()
file(WRITE ${OUT} "% SSLSTREAM 1 \"\" \"sslstream ${VERSION}\" \"User Commands\"\n${text}")

#!/bin/sh
# hello.cgi - the legacy CGI script of bench/run (variants c, d, e): the
# cheapest script a shell can be, so the benchmark measures the gateway.
printf 'Content-Type: text/plain\r\n\r\nhello\n'

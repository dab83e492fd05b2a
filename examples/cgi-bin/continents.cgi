#!/usr/bin/perl
# continents.cgi - the example legacy CGI application: a plain Perl CGI
# script (core Perl only) that lists the continents as JSON, the way the
# seed services did. fcgi-ratelimit wraps it in the demo: it knows nothing
# about rate limits, Redis or FastCGI.
use strict;
use warnings;

my @continents = (
    'Africa', 'Antarctica', 'Asia', 'Australia',
    'Europe', 'North America', 'South America',
);

my $client = $ENV{REMOTE_ADDR} || 'unknown';
print "Content-Type: application/json\r\n";
print "Cache-Control: no-store\r\n";
print "\r\n";
print '{"continents":[', join(',', map { qq("$_") } @continents), '],',
      qq("served_to":"$client"}), "\n";

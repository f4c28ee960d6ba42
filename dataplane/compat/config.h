/*
 * compat/config.h: libmdnsd's installed headers (Debian's libmdnsd-dev
 * 0.12: <libmdnsd/mdnsd.h>, <libmdnsd/1035.h>) include "config.h", the
 * build configuration of libmdnsd itself, which the package does not
 * ship.  This stands in for it with what those headers test.  Only
 * dnssd.c, announce.c and control/discover.c include libmdnsd's headers.
 */
#ifndef LAMINA_MDNSD_COMPAT_CONFIG_H
#define LAMINA_MDNSD_COMPAT_CONFIG_H
#define HAVE_NETINET_IN_H 1
#define HAVE_SYS_SOCKET_H 1
#endif

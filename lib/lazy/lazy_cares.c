/*
 * lazy_cares.c - c-ares, the resolver of the DNS doctor (lib/dns/resolver.c), loaded by
 * pigeon_dns_new.
 */
#include "lazy/lazy.h"

#if defined(PIGEON_LAZY_LIBS) && defined(PIGEON_HAVE_CARES)
#include <ares.h>

#include "lazy/lazy_stub.h"

#define CARES_FUNCTIONS(F, V)                                                                      \
    F(int, ares_library_init, (int flags), (flags))                                                \
    V(ares_library_cleanup, (void), ())                                                            \
    F(int, ares_init_options,                                                                      \
      (ares_channel * channelptr, struct ares_options * options, int optmask),                     \
      (channelptr, options, optmask))                                                              \
    V(ares_destroy, (ares_channel channel), (channel))                                             \
    V(ares_cancel, (ares_channel channel), (channel))                                              \
    F(int, ares_set_servers_ports_csv, (ares_channel channel, const char *servers),                \
      (channel, servers))                                                                          \
    F(int, ares_set_servers_csv, (ares_channel channel, const char *servers), (channel, servers))  \
    V(ares_query,                                                                                  \
      (ares_channel channel, const char *name, int dnsclass, int type, ares_callback callback,     \
       void *arg),                                                                                 \
      (channel, name, dnsclass, type, callback, arg))                                              \
    V(ares_search,                                                                                 \
      (ares_channel channel, const char *name, int dnsclass, int type, ares_callback callback,     \
       void *arg),                                                                                 \
      (channel, name, dnsclass, type, callback, arg))                                              \
    V(ares_send,                                                                                   \
      (ares_channel channel, const unsigned char *qbuf, int qlen, ares_callback callback,          \
       void *arg),                                                                                 \
      (channel, qbuf, qlen, callback, arg))                                                        \
    F(int, ares_getsock, (ares_channel channel, ares_socket_t * socks, int numsocks),              \
      (channel, socks, numsocks))                                                                  \
    V(ares_process_fd, (ares_channel channel, ares_socket_t read_fd, ares_socket_t write_fd),      \
      (channel, read_fd, write_fd))                                                                \
    F(struct timeval *, ares_timeout,                                                              \
      (ares_channel channel, struct timeval * maxtv, struct timeval * tv), (channel, maxtv, tv))   \
    F(const char *, ares_strerror, (int code), (code))                                             \
    V(ares_free_data, (void *dataptr), (dataptr))                                                  \
    V(ares_free_hostent, (struct hostent * host), (host))                                          \
    F(int, ares_parse_a_reply,                                                                     \
      (const unsigned char *abuf, int alen, struct hostent **host, struct ares_addrttl *addrttls,  \
       int *naddrttls),                                                                            \
      (abuf, alen, host, addrttls, naddrttls))                                                     \
    F(int, ares_parse_aaaa_reply,                                                                  \
      (const unsigned char *abuf, int alen, struct hostent **host, struct ares_addr6ttl *addrttls, \
       int *naddrttls),                                                                            \
      (abuf, alen, host, addrttls, naddrttls))                                                     \
    F(int, ares_parse_mx_reply,                                                                    \
      (const unsigned char *abuf, int alen, struct ares_mx_reply **mx_out), (abuf, alen, mx_out))  \
    F(int, ares_parse_ns_reply, (const unsigned char *abuf, int alen, struct hostent **host),      \
      (abuf, alen, host))                                                                          \
    F(int, ares_parse_ptr_reply,                                                                   \
      (const unsigned char *abuf, int alen, const void *addr, int addrlen, int family,             \
       struct hostent **host),                                                                     \
      (abuf, alen, addr, addrlen, family, host))                                                   \
    F(int, ares_parse_txt_reply,                                                                   \
      (const unsigned char *abuf, int alen, struct ares_txt_reply **txt_out),                      \
      (abuf, alen, txt_out))                                                                       \
    F(int, ares_parse_txt_reply_ext,                                                               \
      (const unsigned char *abuf, int alen, struct ares_txt_ext **txt_out), (abuf, alen, txt_out)) \
    F(int, ares_parse_srv_reply,                                                                   \
      (const unsigned char *abuf, int alen, struct ares_srv_reply **srv_out),                      \
      (abuf, alen, srv_out))                                                                       \
    F(int, ares_parse_soa_reply,                                                                   \
      (const unsigned char *abuf, int alen, struct ares_soa_reply **soa_out),                      \
      (abuf, alen, soa_out))                                                                       \
    F(int, ares_parse_caa_reply,                                                                   \
      (const unsigned char *abuf, int alen, struct ares_caa_reply **caa_out),                      \
      (abuf, alen, caa_out))

PG_LAZY_DEFINE(CARES_FUNCTIONS, PIGEON_SONAME_CARES, PIGEON_PACKAGE_CARES, "the DNS resolver")

pigeon_err pg_lazy_cares(char *err, size_t errlen)
{
    return pg_lazy_open(&lib, err, errlen);
}
#else
pigeon_err pg_lazy_cares(char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    return PIGEON_OK;
}
#endif

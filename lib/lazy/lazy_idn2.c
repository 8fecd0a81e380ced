/*
 * lazy_idn2.c - libidn2 (with libunistring), for international domain names
 * (lib/address/idn.c), loaded by the first domain that is not plain ASCII.
 */
#include "lazy/lazy.h"

#ifdef PIGEON_LAZY_LIBS
#include <idn2.h>

#include "lazy/lazy_stub.h"

#define IDN2_FUNCTIONS(F, V)                                                                       \
    F(int, idn2_to_ascii_8z, (const char *input, char **output, int flags),                        \
      (input, output, flags))                                                                      \
    F(int, idn2_to_unicode_8z8z, (const char *input, char **output, int flags),                    \
      (input, output, flags))                                                                      \
    F(int, idn2_lookup_u8, (const uint8_t *src, uint8_t **lookupname, int flags),                  \
      (src, lookupname, flags))                                                                    \
    F(const char *, idn2_strerror, (int rc), (rc))                                                 \
    V(idn2_free, (void *ptr), (ptr))

PG_LAZY_DEFINE(IDN2_FUNCTIONS, PIGEON_SONAME_IDN2, PIGEON_PACKAGE_IDN2,
               "an international domain name")

pigeon_err pg_lazy_idn2(char *err, size_t errlen)
{
    return pg_lazy_open(&lib, err, errlen);
}
#else
pigeon_err pg_lazy_idn2(char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    return PIGEON_OK;
}
#endif

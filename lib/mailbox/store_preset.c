/*
 * store_preset.c - the IMAP and POP3 servers of the provider presets (pigeon/provider.h
 * names them; this table adds where their mailboxes are read). Hosts and ports are the
 * providers' documented client settings, implicit TLS (RFC 8314 3.3) on 993 and 995.
 */
#include <stddef.h>
#include <strings.h>

#include "pigeon/mailbox.h"

static const pigeon_store_preset presets[] = {
    {"qq", "imap.qq.com", 993, "pop.qq.com", 995},
    {"qq-starttls", "imap.qq.com", 993, "pop.qq.com", 995},
    {"qq-exmail", "imap.exmail.qq.com", 993, "pop.exmail.qq.com", 995},
    {"163", "imap.163.com", 993, "pop.163.com", 995},
    {"126", "imap.126.com", 993, "pop.126.com", 995},
    {"yeah", "imap.yeah.net", 993, "pop.yeah.net", 995},
    {"139", "imap.139.com", 993, "pop.139.com", 995},
    {"sina", "imap.sina.com", 993, "pop.sina.com", 995},
    {"sohu", "imap.sohu.com", 993, "pop3.sohu.com", 995},
    {"aliyun", "imap.aliyun.com", 993, "pop3.aliyun.com", 995},
    {"aliyun-qiye", "imap.qiye.aliyun.com", 993, "pop.qiye.aliyun.com", 995},
    {"gmail", "imap.gmail.com", 993, "pop.gmail.com", 995},
    {"outlook", "outlook.office365.com", 993, "outlook.office365.com", 995},
    {"office365", "outlook.office365.com", 993, "outlook.office365.com", 995},
    {"yahoo", "imap.mail.yahoo.com", 993, "pop.mail.yahoo.com", 995},
    {"icloud", "imap.mail.me.com", 993, NULL, 0},
    {"zoho", "imap.zoho.com", 993, "pop.zoho.com", 995},
};

const pigeon_store_preset *pigeon_store_preset_lookup(const char *provider)
{
    if (provider == NULL)
        return NULL;
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++)
        if (strcasecmp(presets[i].provider, provider) == 0)
            return &presets[i];
    return NULL;
}

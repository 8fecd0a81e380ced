/*
 * pigeon/pigeon.h - the umbrella header of libpigeon.
 *
 * libpigeon composes Internet mail (MIME) and delivers it over SMTP. Include this one
 * header; link with `pkg-config --libs pigeon`.
 */
#ifndef PIGEON_PIGEON_H
#define PIGEON_PIGEON_H

#define PIGEON_VERSION "0.1.0"

#include "pigeon/error.h"
#include "pigeon/address.h"
#include "pigeon/message.h"
#include "pigeon/provider.h"
#include "pigeon/smtp.h"
#include "pigeon/spool.h"
#include "pigeon/suppress.h"
#include "pigeon/metrics.h"
#include "pigeon/dns.h"
#include "pigeon/template.h"
#include "pigeon/dkim.h"
#include "pigeon/lint.h"
#include "pigeon/html.h"
#include "pigeon/mailbox.h"
#include "pigeon/bounce.h"

#endif

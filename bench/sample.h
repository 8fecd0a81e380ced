/*
 * sample.h - the benchmarks' shared sample: the 7.4 KB bilingual text + HTML message of
 * bench/sample.py (a copy of /work/shared/bench/sample.py), built byte for byte the same.
 * Header-only: each bench_*.c is its own program.
 */
#ifndef PIGEON_BENCH_SAMPLE_H
#define PIGEON_BENCH_SAMPLE_H

#include <stdlib.h>
#include <string.h>

#define SAMPLE_FROM    "sender@example.com"
#define SAMPLE_TO      "receiver@example.com"
#define SAMPLE_SUBJECT "月度报告通知 — monthly report"
#define SAMPLE_REPEAT  20 /* sample.py repeats each unit 20 times */

/* head + unit * times + tail, malloc'd (NULL when out of memory). */
static inline char *sample_repeat(const char *head, const char *unit, int times, const char *tail)
{
    size_t hl = strlen(head), ul = strlen(unit), tl = strlen(tail);
    char *out = malloc(hl + ul * (size_t)times + tl + 1);
    if (out == NULL)
        return NULL;
    char *p = out;
    memcpy(p, head, hl);
    p += hl;
    for (int i = 0; i < times; i++, p += ul)
        memcpy(p, unit, ul);
    memcpy(p, tail, tl + 1);
    return out;
}

/* sample.py's TEXT. */
static inline char *sample_text(void)
{
    return sample_repeat("",
                         "您好,这是一封通过程序自动发送的月度报告通知邮件。\n"
                         "Hello, this is the monthly report notification sent by a program.\n",
                         SAMPLE_REPEAT, "");
}

/* sample.py's HTML (both paragraphs are repeated: Python joins adjacent literals first). */
static inline char *sample_html(void)
{
    return sample_repeat("<html><body><div style=\"font-family: Arial, sans-serif; color: #333;\">",
                         "<p>您好,这是一封通过程序自动发送的<b>月度报告</b>通知邮件。</p>"
                         "<p>Hello, this is the <i>monthly report</i> notification.</p>",
                         SAMPLE_REPEAT, "</div></body></html>");
}

#endif

/*
 * smtp_data_int.h - what smtp_data.c (one mail transaction: envelope, command group,
 * replies, message data) gives smtp_data_batch.c (several messages over one session,
 * pipelined one after the other). Private to lib/smtp/.
 */
#ifndef PIGEON_SMTP_DATA_INT_H
#define PIGEON_SMTP_DATA_INT_H

#include "smtp/smtp_int.h"

/* Where the message bytes come from. */
typedef struct data_source {
    pigeon_message *msg;           /* a composed message (re-openable), or NULL */
    pigeon_write_opts wopts;       /* how to write msg */
    pigeon_message_stream *stream; /* msg's open stream, or NULL */
    pigeon_read_fn read;           /* a raw reader (read once), or NULL */
    void *read_ctx;                /* read's context */
    int used;                      /* the raw reader was consumed */
    pg_buf replay;                 /* VERP: the raw message read once, sent from here */
    size_t replay_pos;             /* how much of replay the current transaction sent */
    int replaying;                 /* replay holds the whole raw message */
} data_source;

/* One recipient's progress in the current transaction. */
typedef struct rcpt_state {
    int in_txn;   /* part of the current transaction */
    int ok;       /* RCPT accepted, waiting for the data's outcome */
    int overflow; /* 452 too many recipients: goes in the next transaction */
    int final;    /* its result is decided */
} rcpt_state;

/* The envelope and state of one send call. */
typedef struct envelope {
    char *from;     /* reverse-path address ("" for <>) (owned) */
    rcpt_state *st; /* per recipient (owned), same order as res->rcpts */
    size_t n;       /* number of recipients */
    int smtputf8;   /* an address needs SMTPUTF8 */
    int is_8bit;    /* the message has 8-bit octets */
    int64_t size;   /* message size or -1 */
    char **senders; /* VERP: each recipient's envelope sender (owned, n of them), or NULL */
} envelope;

/* Appends the next message's command group to s->out (batches), or nothing. */
typedef struct next_group {
    void (*append)(pigeon_smtp *s, void *ctx); /* builds the group into s->out */
    void *ctx;                                 /* its context */
} next_group;

/* A transaction's progress. */
typedef struct txn {
    int rset;         /* RSET leads its group */
    int mail_ok;      /* MAIL (and RSET) accepted */
    int accepted;     /* recipients accepted */
    int reached_data; /* DATA was sent and s->reply holds its reply */
    int sent_next;    /* the next group went out with this transaction's end of data */
} txn;

/* PIGEON_OK when the session can start a transaction, else the error (recorded in s->res). */
pigeon_err pg_smtp_check_ready(pigeon_smtp *s);

/* Frees what env owns; env may be zeroed or half built. */
void pg_smtp_envelope_cleanup(envelope *env);

/* The envelope of composed message msg: its envelope sender and recipients as addr-specs
 * (in SMTPUTF8 form when the server offers it), and the VERP senders when they are asked
 * for. Failures are recorded in s->res. */
pigeon_err pg_smtp_message_envelope(pigeon_smtp *s, pigeon_message *msg, envelope *env);

/* The envelope of a raw message, validated: addresses as path_ok() accepts them, and
 * SMTPUTF8 offered when one is not ASCII. Failures are recorded in s->res. */
pigeon_err pg_smtp_raw_envelope(pigeon_smtp *s, envelope *env, const char *from,
                                const char *const *rcpts, size_t n);

/* Opens src for reading from its start: a composed message's stream is opened anew, a
 * replayed raw message rewinds, a raw reader opens once (PIGEON_ERR_STATE after that).
 * pg_smtp_source_close frees the stream. */
pigeon_err pg_smtp_source_open(data_source *src);
void pg_smtp_source_close(data_source *src);

/* RFC 2920 3.1: [RSET] MAIL, every RCPT and DATA as one group in s->out. */
void pg_smtp_txn_group(pigeon_smtp *s, envelope *env, txn *t);

/* Reads the group's replies, in command order. */
pigeon_err pg_smtp_txn_group_replies(pigeon_smtp *s, envelope *env, txn *t);

/*
 * After DATA's reply: the body and the final dot when it is 354 and a recipient was
 * accepted; only the dot when DATA was accepted although no recipient was (RFC 2920 3.1:
 * nothing is delivered, the reply is ignored); nothing otherwise. next (may be NULL) is
 * written with the end of data; t->sent_next tells whether that happened.
 */
pigeon_err pg_smtp_txn_data(pigeon_smtp *s, envelope *env, data_source *src, txn *t,
                            const next_group *next);

/* Decides every open recipient and the overall status from the per-recipient results and
 * the session failure, if any. */
void pg_smtp_finish(pigeon_smtp *s, envelope *env);

#endif

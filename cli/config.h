/*
 * config.h - the pigeon configuration file and the effective settings of a send.
 *
 * Format (pigeon.conf(5)): INI. Keys before any section are defaults for every account;
 * "[account NAME]" starts an account. "default_account = NAME" picks the default account
 * (else the account named "default", else the only account). Values may be double-quoted
 * (with \" and \\ escapes) to keep leading or trailing spaces.
 *
 * Precedence of each setting: command line > account > defaults section > provider preset >
 * built-in defaults. Every value remembers where it came from, for `pigeon config show`.
 */
#ifndef PIGEON_CLI_CONFIG_H
#define PIGEON_CLI_CONFIG_H

#include <stddef.h>

/* Where a setting's value came from. */
typedef enum cfg_source {
    CFG_UNSET = 0,   /* not set anywhere */
    CFG_BUILTIN = 1, /* pigeon's own default */
    CFG_PRESET = 2,  /* the provider preset */
    CFG_FILE = 3,    /* the configuration file (file:line in origin) */
    CFG_ENV = 4,     /* an environment variable */
    CFG_CLI = 5,     /* the command line */
} cfg_source;

/* The settings a send uses, each with its origin. */
enum cfg_key {
    K_PROVIDER,
    K_HOST,
    K_PORT,
    K_TLS,
    K_USER,
    K_FROM,
    K_PASSWORD,
    K_PASSWORD_FILE,
    K_PASSWORD_COMMAND,
    K_OAUTH_TOKEN_COMMAND,
    K_CA_FILE,
    K_TLS_FINGERPRINT,
    K_INSECURE,
    K_AUTH,
    K_HELO,
    K_TIMEOUT,
    K_CONNECT_TIMEOUT,
    K_RATE_PER_SECOND,
    K_DAILY_LIMIT,
    K_MAX_CONNECTIONS,
    K_PASSWORD_COMMAND_TIMEOUT,
    K_DKIM_DOMAIN, /* DKIM (cli/dkim.h) */
    K_DKIM_SELECTOR,
    K_DKIM_KEY,
    K_DKIM_ALGORITHM,
    K_DKIM_CANONICALIZATION,
    K_DKIM_EXPIRE,
    K_SOFT_BOUNCE_LIMIT, /* the suppression list (cli/suppress.h) */
    K_SOFT_BOUNCE_DAYS,
    K_SENDMAIL_SUPPRESSION,
    K_IMAP_HOST, /* the account's mailbox (cli/mailbox_conn.h) */
    K_IMAP_PORT,
    K_POP3_HOST,
    K_POP3_PORT,
    K_SAVE_SENT,
    K_BOUNCE_CHECK,
    K_VERP, /* VERP sending (cli/verp.h) */
    K_VERP_KEY_FILE,
    K_COUNT
};

typedef struct cfg_value {
    char *value;       /* the value, malloc'd, or NULL when unset */
    cfg_source source; /* where it came from */
    char origin[128];  /* "~/.config/pigeon/config:12", "preset qq", "--host", ... */
} cfg_value;

typedef struct cfg_settings {
    cfg_value v[K_COUNT];  /* every setting, indexed by enum cfg_key */
    char account[64];      /* the account used, "" for none */
    char config_path[512]; /* the file read, "" for none */
    char unchosen[256];    /* "a, b": the file's accounts when it has several, none is the
                              default and none was asked for ("" otherwise) */
} cfg_settings;

/* The name of a key as written in the file ("password_command"). */
const char *cfg_key_name(enum cfg_key k);
/* The key for a name, or -1. */
int cfg_key_lookup(const char *name);

/* Sets v[k] (replacing a value of lower or equal precedence). Returns 0, or -1 (no memory). */
int cfg_set(cfg_settings *s, enum cfg_key k, const char *value, cfg_source src, const char *origin);
/* The value or NULL. */
const char *cfg_get(const cfg_settings *s, enum cfg_key k);

/*
 * Checks a value for key k as both the command line and the file require: no control
 * character anywhere, and the key's own syntax (port 1-65535, tls mode, helo a domain or
 * address literal, from an address, timeouts in seconds...). Returns 0, or -1 with what
 * was expected in why ("expected 1-65535").
 */
int cfg_check(enum cfg_key k, const char *value, char *why, size_t whylen);

/* Reads a duration "600", "600s", "10m" or "1h" (at most a day) into *out seconds;
 * -1 for anything else. */
int cfg_duration_s(const char *s, long *out);

/* Reads yes/no, true/false, on/off, 1/0 (any case) into *out; -1 for anything else. */
int cfg_bool(const char *value, int *out);

/*
 * Finds the configuration file: $PIGEON_CONFIG, else $XDG_CONFIG_HOME/pigeon/config (or
 * ~/.config/pigeon/config), else /etc/pigeon.conf. Writes the path to out and returns 1 if
 * it exists, 0 if none exists (out is then the first candidate), and -1 when $PIGEON_CONFIG
 * names a file that does not exist (an error: the user asked for it).
 */
int cfg_find_file(char *out, size_t outlen);

/*
 * Loads the file into s for the account (NULL: the default account). Errors (returns -1
 * with a one-line reason naming the file and line, and the chmod or chown that fixes a
 * permission problem, in err): unknown keys, syntax errors, a value cfg_check() refuses,
 * an [account NAME] given twice, a missing named account; a file that group or others can
 * write or that someone other than the user or root owns (as ssh refuses its config:
 * whoever can change it can point host elsewhere); a secret-bearing file that group or
 * others can read or that another user owns.
 */
int cfg_load(cfg_settings *s, const char *path, const char *account, char *err, size_t errlen);

/* The value of a top-level key that is not an account setting (`smtp_listen` of pigeon
 * serve), NUL-terminated in out: 1 when set, 0 when not, -1 when the file cannot be read
 * (the reason in err). */
int cfg_top_value(const char *path, const char *key, char *out, size_t outlen, char *err,
                  size_t errlen);

/* Lists the account names in the file (for help and errors), comma-separated, into out. */
int cfg_list_accounts(const char *path, char *out, size_t outlen);

/* Calls fn for every line of the file: a section header ("account NAME", "webhook NAME";
 * key and value NULL) or a key = value (value unquoted; section "" before any). fn
 * returning nonzero stops with that result. Returns 0, or -1 with the reason in err. */
typedef int (*cfg_line_fn)(void *ctx, const char *section, const char *key, const char *value,
                           int lineno, char *err, size_t errlen);
int cfg_read_file(const char *path, cfg_line_fn fn, void *ctx, char *err, size_t errlen);

/* Frees every value (wiping the password) and zeroes the settings. */
void cfg_cleanup(cfg_settings *s);

#endif

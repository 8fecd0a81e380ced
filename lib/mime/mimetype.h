/*
 * mimetype.h - a content type guessed from a file name's extension (internal).
 *
 * A fixed table of the common types (RFC 2046 media types as registered with IANA, plus
 * the Office Open XML ones); anything else is application/octet-stream (RFC 2046 4.5.1),
 * which every client offers to save.
 */
#ifndef PG_MIMETYPE_H
#define PG_MIMETYPE_H

/* The media type for filename's extension (case-insensitive), a static string; NULL or a
 * name without a known extension gives "application/octet-stream". */
const char *pg_mimetype_guess(const char *filename);

#endif

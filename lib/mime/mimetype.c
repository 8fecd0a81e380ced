/*
 * mimetype.c - content type guessed from the file extension.
 *
 * The table holds the types users attach most (office documents, images, archives,
 * audio/video, calendar invitations). Lookup is a linear scan: the table is small and
 * is consulted once per attachment.
 */
#include "mime/mimetype.h"

#include <stddef.h>
#include <string.h>
#include <strings.h>

struct ext_type {
    const char *ext;  /* extension without the dot, lower case */
    const char *type; /* media type "type/subtype" */
};

static const struct ext_type types[] = {
    {"pdf", "application/pdf"},
    {"doc", "application/msword"},
    {"docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"},
    {"xls", "application/vnd.ms-excel"},
    {"xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"},
    {"ppt", "application/vnd.ms-powerpoint"},
    {"pptx", "application/vnd.openxmlformats-officedocument.presentationml.presentation"},
    {"odt", "application/vnd.oasis.opendocument.text"},
    {"ods", "application/vnd.oasis.opendocument.spreadsheet"},
    {"odp", "application/vnd.oasis.opendocument.presentation"},
    {"rtf", "application/rtf"},
    {"epub", "application/epub+zip"},
    {"zip", "application/zip"},
    {"gz", "application/gzip"},
    {"tgz", "application/gzip"},
    {"tar", "application/x-tar"},
    {"bz2", "application/x-bzip2"},
    {"xz", "application/x-xz"},
    {"7z", "application/x-7z-compressed"},
    {"rar", "application/vnd.rar"},
    {"json", "application/json"},
    {"xml", "application/xml"},
    {"js", "text/javascript"},
    {"wasm", "application/wasm"},
    {"apk", "application/vnd.android.package-archive"},
    {"exe", "application/vnd.microsoft.portable-executable"},
    {"msi", "application/x-msi"},
    {"dmg", "application/x-apple-diskimage"},
    {"iso", "application/x-iso9660-image"},
    {"sql", "application/sql"},
    {"p7s", "application/pkcs7-signature"},
    {"asc", "application/pgp-signature"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"webp", "image/webp"},
    {"svg", "image/svg+xml"},
    {"bmp", "image/bmp"},
    {"ico", "image/vnd.microsoft.icon"},
    {"tif", "image/tiff"},
    {"tiff", "image/tiff"},
    {"heic", "image/heic"},
    {"avif", "image/avif"},
    {"txt", "text/plain"},
    {"log", "text/plain"},
    {"md", "text/markdown"},
    {"csv", "text/csv"},
    {"tsv", "text/tab-separated-values"},
    {"htm", "text/html"},
    {"html", "text/html"},
    {"css", "text/css"},
    {"ics", "text/calendar"},
    {"vcf", "text/vcard"},
    {"eml", "message/rfc822"},
    {"mp3", "audio/mpeg"},
    {"wav", "audio/wav"},
    {"ogg", "audio/ogg"},
    {"m4a", "audio/mp4"},
    {"flac", "audio/flac"},
    {"aac", "audio/aac"},
    {"mp4", "video/mp4"},
    {"m4v", "video/mp4"},
    {"mov", "video/quicktime"},
    {"avi", "video/x-msvideo"},
    {"mkv", "video/x-matroska"},
    {"webm", "video/webm"},
    {"ttf", "font/ttf"},
    {"otf", "font/otf"},
    {"woff", "font/woff"},
    {"woff2", "font/woff2"},
};

const char *pg_mimetype_guess(const char *filename)
{
    const char *dot;
    if (filename == NULL)
        return "application/octet-stream";
    dot = strrchr(filename, '.');
    /* A leading dot (".profile") is a hidden file, not an extension. */
    if (dot == NULL || dot == filename || dot[1] == '\0' || strchr(dot, '/') != NULL)
        return "application/octet-stream";
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        if (strcasecmp(dot + 1, types[i].ext) == 0)
            return types[i].type;
    }
    return "application/octet-stream";
}

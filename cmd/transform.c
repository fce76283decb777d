/*
 * transform.c: `userpipe transform`, the transform stage alone over
 * NDJSON, for dry runs of a backfill and for tests.  Its interface is a
 * contract scripts depend on: see usage() and README.md.
 *
 * Memory stays bounded whatever the input: lines are read through a buffer
 * of max-event-bytes; a longer line is rejected as too_large and quoted in
 * its reject line piece by piece (base64) as it is read, never held whole.
 */
#include "commands.h"
#include "../core/core.h"
#include "ndjson.h"
#include "../schemas/schema.h"
#include "../transform/transform.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fputs(
        "usage: userpipe transform [options] < events.ndjson > "
        "accepted.ndjson\n"
        "\n"
        "Reads one JSON event a line on stdin (blank lines skipped, a final\n"
        "'\\r' ignored) and applies the transform rules: dotted metadata keys\n"
        "become underscores, every metadata key keeps one JSON type, the user\n"
        "fields are validated.  Each accepted event is written to stdout as "
        "one\n"
        "line of minified JSON, in input order.  Each rejected event is "
        "written\n"
        "as one NDJSON line to the rejects file:\n"
        "  {\"line\":N,\"code\":\"...\",\"path\":\"...\",\"message\":\"...\","
        "\"event\":\"<raw line>\"}\n"
        "(\"event_b64\", the raw line in base64, replaces \"event\" when the "
        "line\n"
        "is not valid UTF-8 or longer than --max-event-bytes).\n"
        "\n"
        "options:\n"
        "  --schema FILE          seed types: a JSON object of key to type "
        "name,\n"
        "                         e.g. {\"phone\":\"string\"}; they win over\n"
        "                         anything learned\n"
        "  --schema-out FILE      write every type known at the end (seed and\n"
        "                         learned) to FILE, in the seed format\n"
        "  --schema-scope name|path\n"
        "                         one type per key name at any depth "
        "(default,\n"
        "                         Moesif's rule) or per full path\n"
        "  --unknown-fields reject|drop|metadata\n"
        "                         a top-level field Moesif does not know is\n"
        "                         rejected (default), dropped, or moved under\n"
        "                         metadata\n"
        "  --max-event-bytes N    larger events are rejected as too_large\n"
        "                         (default 1048576)\n"
        "  --max-depth N          deeper nesting is rejected as too_deep; the\n"
        "                         event object is level 1 (default 64)\n"
        "  --rejects FILE         where reject lines go (default stderr)\n"
        "  --help                 this text\n"
        "\n"
        "reject codes: invalid_json not_an_object missing_user_id\n"
        "  invalid_field_type unknown_field type_conflict duplicate_key\n"
        "  too_large too_deep\n"
        "\n"
        "exit status: 0 when the input was read to its end (rejects are not\n"
        "errors), 2 on bad usage or a bad schema file, 1 on an input/output\n"
        "error.\n",
        f);
}

/* Line reader over a fixed buffer: a line longer than the buffer is
 * handed out in pieces, flagged as oversize. */
struct reader {
    FILE *f;
    char *buf;
    size_t cap, start, end;
    int eof;
    int in_oversize; /* the current line overflowed; pieces follow */
};

enum read_result {
    READ_LINE,  /* a whole line */
    READ_PIECE, /* a piece of an oversize line; more follow */
    READ_LAST,  /* the last piece of an oversize line */
    READ_EOF,
    READ_ERROR
};

static enum read_result reader_next(struct reader *r, const char **line,
                                    size_t *len)
{
    for (;;) {
        char *nl = memchr(r->buf + r->start, '\n', r->end - r->start);
        if (nl != NULL) {
            *line = r->buf + r->start;
            *len = (size_t)(nl - *line);
            r->start += *len + 1;
            if (r->in_oversize) {
                r->in_oversize = 0;
                return READ_LAST;
            }
            return READ_LINE;
        }
        if (r->end - r->start >= r->cap ||
            (r->in_oversize && r->end > r->start)) {
            /* no newline within the limit: hand out what we have */
            *line = r->buf + r->start;
            *len = r->end - r->start;
            r->start = r->end;
            r->in_oversize = 1;
            return READ_PIECE;
        }
        if (r->eof) {
            if (r->end > r->start || r->in_oversize) {
                *line = r->buf + r->start;
                *len = r->end - r->start;
                r->start = r->end;
                if (r->in_oversize) {
                    r->in_oversize = 0;
                    return READ_LAST;
                }
                return READ_LINE;
            }
            return READ_EOF;
        }
        if (r->start > 0) {
            memmove(r->buf, r->buf + r->start, r->end - r->start);
            r->end -= r->start;
            r->start = 0;
        }
        {
            size_t n = fread(r->buf + r->end, 1, r->cap - r->end, r->f);
            r->end += n;
            if (n == 0) {
                if (ferror(r->f)) {
                    return READ_ERROR;
                }
                r->eof = 1;
            }
        }
    }
}

static int blank(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') {
            return 0;
        }
    }
    return 1;
}

static void write_reject_head(FILE *rf, unsigned long long line,
                              const struct core_reject *rej)
{
    fprintf(rf, "{\"line\":%llu,\"code\":\"%s\",\"path\":\"", line,
            core_reject_name(rej->code));
    json_write_escaped(rf, rej->path, strlen(rej->path));
    fputs("\",\"message\":\"", rf);
    json_write_escaped(rf, rej->message, strlen(rej->message));
    fputc('"', rf);
}

static void write_reject(FILE *rf, unsigned long long line,
                         const struct core_reject *rej, const char *ev,
                         size_t len)
{
    write_reject_head(rf, line, rej);
    if (rej->code != CORE_REJECT_TOO_LARGE && utf8_valid(ev, len)) {
        fputs(",\"event\":\"", rf);
        json_write_escaped(rf, ev, len);
    } else {
        struct b64 b;
        fputs(",\"event_b64\":\"", rf);
        b64_init(&b);
        b64_write(&b, rf, ev, len);
        b64_finish(&b, rf);
    }
    fputs("\"}\n", rf);
}

static int parse_size(const char *opt, const char *arg, size_t min, size_t max,
                      size_t *out)
{
    char *end;
    unsigned long long v;

    errno = 0;
    v = strtoull(arg, &end, 10);
    if (errno != 0 || end == arg || *end != '\0' || arg[0] == '-' || v < min ||
        v > max) {
        fprintf(stderr,
                "userpipe transform: %s takes a whole number from %zu to "
                "%zu, not '%s'\n",
                opt, min, max, arg);
        return -1;
    }
    *out = (size_t)v;
    return 0;
}

struct options {
    const char *schema_in, *schema_out, *rejects;
    struct transform_config cfg;
};

/* Returns 0, 2 for bad usage, or -1 when --help was printed. */
static int parse_options(int argc, char **argv, struct options *o)
{
    static const struct option longopts[] = {
        {"schema", required_argument, NULL, 's'},
        {"schema-out", required_argument, NULL, 'o'},
        {"schema-scope", required_argument, NULL, 'S'},
        {"unknown-fields", required_argument, NULL, 'u'},
        {"max-event-bytes", required_argument, NULL, 'b'},
        {"max-depth", required_argument, NULL, 'd'},
        {"rejects", required_argument, NULL, 'r'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    size_t v;

    memset(o, 0, sizeof(*o));
    transform_config_init(&o->cfg);
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 's':
            o->schema_in = optarg;
            break;
        case 'o':
            o->schema_out = optarg;
            break;
        case 'r':
            o->rejects = optarg;
            break;
        case 'S':
            if (strcmp(optarg, "name") == 0) {
                o->cfg.scope = TRANSFORM_SCOPE_NAME;
            } else if (strcmp(optarg, "path") == 0) {
                o->cfg.scope = TRANSFORM_SCOPE_PATH;
            } else {
                fprintf(stderr,
                        "userpipe transform: --schema-scope takes "
                        "'name' or 'path', not '%s'\n",
                        optarg);
                return 2;
            }
            break;
        case 'u':
            if (strcmp(optarg, "reject") == 0) {
                o->cfg.unknown_fields = TRANSFORM_UNKNOWN_REJECT;
            } else if (strcmp(optarg, "drop") == 0) {
                o->cfg.unknown_fields = TRANSFORM_UNKNOWN_DROP;
            } else if (strcmp(optarg, "metadata") == 0) {
                o->cfg.unknown_fields = TRANSFORM_UNKNOWN_METADATA;
            } else {
                fprintf(stderr,
                        "userpipe transform: --unknown-fields takes "
                        "'reject', 'drop' or 'metadata', not '%s'\n",
                        optarg);
                return 2;
            }
            break;
        case 'b':
            if (parse_size("--max-event-bytes", optarg,
                           TRANSFORM_MAX_EVENT_BYTES_MIN,
                           TRANSFORM_MAX_EVENT_BYTES_MAX, &v) != 0) {
                return 2;
            }
            o->cfg.max_event_bytes = v;
            break;
        case 'd':
            if (parse_size("--max-depth", optarg, TRANSFORM_MAX_DEPTH_MIN,
                           TRANSFORM_MAX_DEPTH_MAX, &v) != 0) {
                return 2;
            }
            o->cfg.max_depth = (unsigned)v;
            break;
        case 'h':
            usage(stdout);
            return -1;
        default:
            fprintf(stderr,
                    "userpipe transform: unknown or incomplete option '%s'; "
                    "see 'userpipe transform --help'\n",
                    argv[optind - 1]);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr,
                "userpipe transform: unexpected argument '%s': events are "
                "read from stdin\n",
                argv[optind]);
        return 2;
    }
    return 0;
}

/* Streams an oversize line into its reject line; returns 0 or -1 on a
 * read error.  The length is not known before the end, so the message
 * states the limit only. */
static int reject_oversize(struct reader *r, FILE *rf, unsigned long long line,
                           size_t max, const char *first, size_t first_len)
{
    struct b64 b;
    enum read_result rr = READ_PIECE;
    const char *p;
    size_t len;
    char message[160];

    snprintf(message, sizeof(message),
             "the event is longer than the limit of %zu bytes "
             "(--max-event-bytes)",
             max);
    fprintf(rf,
            "{\"line\":%llu,\"code\":\"too_large\",\"path\":\"\","
            "\"message\":\"%s\",\"event_b64\":\"",
            line, message);
    b64_init(&b);
    b64_write(&b, rf, first, first_len);
    while (rr == READ_PIECE) {
        rr = reader_next(r, &p, &len);
        if (rr == READ_ERROR) {
            return -1;
        }
        b64_write(&b, rf, p, len);
    }
    b64_finish(&b, rf);
    fputs("\"}\n", rf);
    return 0;
}

int cmd_transform(int argc, char **argv)
{
    struct options o;
    struct schema *sch = NULL;
    struct transform *tf = NULL;
    struct reader r = {0};
    FILE *rf = stderr;
    char errstr[512];
    unsigned long long line = 0, accepted = 0, rejected = 0;
    int status = 0;
    enum core_err rc;

    status = parse_options(argc, argv, &o);
    if (status != 0) {
        return status < 0 ? 0 : status;
    }
    /* a closed stdout is an I/O error reported by ferror, not a signal */
    signal(SIGPIPE, SIG_IGN);

    sch = schema_new();
    if (o.schema_in != NULL) {
        rc = schema_load_file(sch, o.schema_in, errstr, sizeof(errstr));
        if (rc != CORE_OK) {
            fprintf(stderr, "userpipe transform: %s\n", errstr);
            status = rc == CORE_ERR_IO ? 1 : 2;
            goto out;
        }
    }
    rc = transform_new(&o.cfg, sch, &tf, errstr, sizeof(errstr));
    if (rc != CORE_OK) {
        fprintf(stderr, "userpipe transform: %s\n", errstr);
        status = 2;
        goto out;
    }
    if (o.rejects != NULL) {
        rf = fopen(o.rejects, "w");
        if (rf == NULL) {
            fprintf(stderr,
                    "userpipe transform: cannot open rejects file "
                    "'%s': %s\n",
                    o.rejects, strerror(errno));
            rf = stderr;
            status = 1;
            goto out;
        }
    }
    r.f = stdin;
    r.cap = o.cfg.max_event_bytes + 2; /* room for a final "\r\n" */
    r.buf = core_malloc(r.cap);

    for (;;) {
        const char *p, *ev;
        size_t len, ev_len;
        struct core_reject rej;
        enum read_result rr = reader_next(&r, &p, &len);

        if (rr == READ_EOF) {
            break;
        }
        if (rr == READ_ERROR) {
            fprintf(stderr, "userpipe transform: cannot read stdin: %s\n",
                    strerror(errno));
            status = 1;
            goto out;
        }
        line++;
        if (rr == READ_PIECE) {
            rejected++;
            if (reject_oversize(&r, rf, line, o.cfg.max_event_bytes, p, len) !=
                0) {
                fprintf(stderr, "userpipe transform: cannot read stdin: %s\n",
                        strerror(errno));
                status = 1;
                goto out;
            }
            continue;
        }
        if (len > 0 && p[len - 1] == '\r') {
            len--;
        }
        if (blank(p, len)) {
            continue;
        }
        rc = transform_event(tf, p, len, &ev, &ev_len, &rej);
        if (rc == CORE_OK) {
            accepted++;
            fwrite(ev, 1, ev_len, stdout);
            fputc('\n', stdout);
        } else {
            rejected++;
            write_reject(rf, line, &rej, p, len);
        }
        if (ferror(stdout) || ferror(rf)) {
            fprintf(stderr, "userpipe transform: cannot write %s: %s\n",
                    ferror(stdout) ? "stdout" : "the rejects", strerror(errno));
            status = 1;
            goto out;
        }
    }
    if (fflush(stdout) != 0 || fflush(rf) != 0) {
        fprintf(stderr, "userpipe transform: cannot write output: %s\n",
                strerror(errno));
        status = 1;
        goto out;
    }
    if (o.schema_out != NULL) {
        rc = schema_save_file(sch, o.schema_out, errstr, sizeof(errstr));
        if (rc != CORE_OK) {
            fprintf(stderr, "userpipe transform: %s\n", errstr);
            status = 1;
            goto out;
        }
    }
    core_log(CORE_LOG_DEBUG, "transform",
             "msg=\"done\" lines=%llu accepted=%llu rejected=%llu", line,
             accepted, rejected);
out:
    if (rf != stderr && fclose(rf) != 0 && status == 0) {
        fprintf(stderr, "userpipe transform: cannot write the rejects: %s\n",
                strerror(errno));
        status = 1;
    }
    free(r.buf);
    transform_destroy(tf);
    schema_destroy(sch);
    return status;
}

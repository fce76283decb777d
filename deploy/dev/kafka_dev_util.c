/*
 * kafka_dev_util.c: the small utilities every part of kafka-dev uses: the
 * structured log line, allocation that aborts, the growing string replies
 * are built in, parsing a bounded integer and a NAME:PARTS topic spec,
 * and setting one librdkafka configuration property.
 *
 * Why here: kafka-dev never links core/ (kafka-dev.c says why), so it
 * keeps its own copies of these few helpers, in one file.
 *
 * Invariant: kd_log writes one whole line in the format of core/log.c, so
 * the dev stack's logs read like userpipe's.
 */
#include "kafka_dev.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* One structured line on stderr, in the format of core/log.c. */
void kd_log(const char *level, const char *fmt, ...)
{
    char line[2048];
    char when[40];
    struct timespec ts;
    struct tm tm;
    va_list ap;
    int n;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    n = snprintf(line, sizeof(line),
                 "time=%s.%03ldZ level=%s component=kafka-dev ", when,
                 ts.tv_nsec / 1000000L, level);
    if (n < 0 || (size_t)n >= sizeof(line)) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s\n", line);
}

void *kd_realloc(void *ptr, size_t size)
{
    void *p = realloc(ptr, size ? size : 1);

    if (p == NULL) {
        fprintf(stderr, "kafka-dev: out of memory\n");
        abort();
    }
    return p;
}

void kd_buf_printf(struct kd_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    if (b->len + (size_t)n + 1 > b->cap) {
        b->cap = (b->len + (size_t)n + 1) * 2;
        b->p = kd_realloc(b->p, b->cap);
    }
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void kd_buf_reset(struct kd_buf *b)
{
    b->len = 0;
    if (b->p != NULL) {
        b->p[0] = '\0';
    }
}

void kd_buf_release(struct kd_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = 0;
    b->cap = 0;
}

/* Parses a decimal integer in [min, max]; 0 on success, -1 otherwise. */
int kd_parse_long(const char *s, long min, long max, long *out)
{
    char *end;
    long v;

    if (s == NULL || *s == '\0') {
        return -1;
    }
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max) {
        return -1;
    }
    *out = v;
    return 0;
}

/* Kafka's legal topic characters: ASCII alphanumerics, '.', '_', '-'. */
static int kd_topic_name_ok(const char *name, size_t len)
{
    if (len == 0 || len > KD_TOPIC_NAME_MAX) {
        return 0;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!isalnum(c) && c != '.' && c != '_' && c != '-') {
            return 0;
        }
    }
    return 1;
}

/*
 * Parses "NAME:PARTS" into name (NUL-terminated, at most
 * KD_TOPIC_NAME_MAX bytes) and partitions; fills errstr on failure.
 */
int kd_parse_topic_spec(const char *spec, char *name, long *partitions,
                        char *errstr, size_t errstr_size)
{
    const char *colon = strrchr(spec, ':');
    size_t len;

    if (colon == NULL) {
        snprintf(errstr, errstr_size,
                 "topic \"%s\" needs a partition count, as NAME:PARTITIONS",
                 spec);
        return -1;
    }
    len = (size_t)(colon - spec);
    if (!kd_topic_name_ok(spec, len)) {
        snprintf(errstr, errstr_size,
                 "topic name in \"%s\" must be 1 to %d characters of "
                 "[A-Za-z0-9._-]",
                 spec, KD_TOPIC_NAME_MAX);
        return -1;
    }
    if (kd_parse_long(colon + 1, 1, KD_MAX_PARTITIONS, partitions) != 0) {
        snprintf(errstr, errstr_size,
                 "partition count in \"%s\" must be an integer from 1 to %d",
                 spec, KD_MAX_PARTITIONS);
        return -1;
    }
    memcpy(name, spec, len);
    name[len] = '\0';
    return 0;
}

int kd_conf_set(rd_kafka_conf_t *conf, const char *name, const char *value,
                char *errstr, size_t errstr_size)
{
    if (rd_kafka_conf_set(conf, name, value, errstr, errstr_size) !=
        RD_KAFKA_CONF_OK) {
        return -1;
    }
    return 0;
}

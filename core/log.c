/*
 * log.c: structured log lines on stderr.
 *
 * Format: time=... level=... component=... msg="..." followed by any
 * key=value fields the caller put in the message.  One write(2)-sized
 * fprintf per line so lines from librdkafka's forwarded logs and ours do
 * not interleave mid-line.  Never pass the application id or a payload;
 * a URL goes through core_url_redact first (it may hold a password).
 */
#include "core.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* Set once by main before any thread starts; read-only afterwards. */
int core_log_threshold = CORE_LOG_INFO;

const char *const core_log_level_names[] = {"error", "warn", "info", "debug",
                                            NULL};

int core_log_level_parse(const char *name)
{
    for (int i = 0; core_log_level_names[i] != NULL; i++) {
        if (strcmp(name, core_log_level_names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

const char *core_url_redact(const char *url, char *out, size_t out_size)
{
    const char *scheme = strstr(url, "://");
    const char *host, *end, *at = NULL;

    if (out_size == 0) {
        return out;
    }
    if (scheme == NULL) {
        snprintf(out, out_size, "%s", url);
        return out;
    }
    host = scheme + 3;
    /* the authority ends at the first '/', '?' or '#' (RFC 3986, 3.2);
     * its userinfo at the last '@' before that, since a password may
     * itself hold an unescaped '@' */
    end = host + strcspn(host, "/?#");
    for (const char *p = host; p < end; p++) {
        if (*p == '@') {
            at = p;
        }
    }
    if (at == NULL) {
        snprintf(out, out_size, "%s", url);
    } else {
        snprintf(out, out_size, "%.*s***%s", (int)(host - url), url, at);
    }
    return out;
}

void core_log_write(enum core_log_level level, const char *component,
                    const char *fmt, ...)
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
    n = snprintf(line, sizeof(line), "time=%s.%03ldZ level=%s component=%s ",
                 when, ts.tv_nsec / 1000000L, core_log_level_names[level],
                 component);
    if (n < 0 || (size_t)n >= sizeof(line)) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s\n", line);
}

/* The librdkafka properties that hold secrets (issue 22): those its
 * configuration table marks _RK_SENSITIVE (rdkafka_conf.c, 2.8.0), and
 * sasl.oauthbearer.client.secret, which 2.8.0 does not mark and so shows
 * in its debug dump of the configuration (found by
 * tests/e2e/test_run_secrets.sh).  Any later one is added here. */
const char *const core_kafka_secrets[] = {
    "sasl.password",
    "sasl.oauthbearer.client.secret",
    "sasl.oauthbearer.config",
    "ssl.key.password",
    "ssl.key.pem",
    "ssl.keystore.password",
    NULL,
};

int core_kafka_secret(const char *name)
{
    for (size_t i = 0; core_kafka_secrets[i] != NULL; i++) {
        if (strcmp(name, core_kafka_secrets[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

void core_log_kafka(int syslog_level, const char *component,
                    const char *facility, const char *text)
{
    /* syslog levels: 0-3 error, 4 warning, 5-6 notice and info, 7 debug */
    enum core_log_level l = syslog_level <= 3   ? CORE_LOG_ERROR
                            : syslog_level == 4 ? CORE_LOG_WARN
                            : syslog_level <= 6 ? CORE_LOG_INFO
                                                : CORE_LOG_DEBUG;
    const char *eq = strstr(text, " = ");

    /* debug=conf dumps every property as "  name = value", after a
     * "[thrd:app]: " prefix: a secret's value is replaced as librdkafka
     * does for the ones it marks */
    if (eq != NULL && strcmp(facility, "CONF") == 0) {
        const char *name = eq;
        char prop[128];

        while (name > text && name[-1] != ' ') {
            name--;
        }
        if ((size_t)(eq - name) < sizeof(prop)) {
            memcpy(prop, name, (size_t)(eq - name));
            prop[eq - name] = '\0';
            if (core_kafka_secret(prop)) {
                core_log(l, component, "msg=\"%.*s = [redacted]\" facility=%s",
                         (int)(eq - text), text, facility);
                return;
            }
        }
    }
    core_log(l, component, "msg=\"%s\" facility=%s", text, facility);
}

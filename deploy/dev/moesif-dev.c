/*
 * moesif-dev.c: main of moesif-dev, a local server of Moesif's collector
 * API for users with Moesif's semantics and fault injection, for the
 * demo, the end-to-end tests and the benchmarks (MOESIF-DEV.md).
 *
 * Here live the command line, the signals, and the daemon's life: the
 * main thread only sleeps in 10 ms ticks, and on a tick where a refusal
 * period is due it stops libmicrohttpd (closing the listening socket, so
 * connecting is really refused) and starts it again on the same port
 * when the period ends.  libmicrohttpd cannot be stopped from one of its
 * own threads, which is why this is not done in the /_dev/faults handler.
 *
 * The command line is a contract: other scripts start moesif-dev with
 * exactly these options, so options only grow.
 */
#include "moesif_dev.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

struct options {
    char host[64];
    unsigned port;
    const char *app_id;
    const char *url_file;
    const char *record;
    unsigned threads;
    size_t max_body_bytes;
    const char *tls_cert; /* paths; HTTPS when set */
    const char *tls_key;
    const char *tls_client_ca;
    struct mfaults_config faults;
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: moesif-dev --listen HOST:PORT --app-id ID "
            "--url-file FILE [--record FILE]\n"
            "         [--fail-429 FRAC] [--fail-500 FRAC] [--fail-503 FRAC] "
            "[--retry-after S]\n"
            "         [--latency-ms N] [--status CODE] "
            "[--refuse-for-ms N --refuse-after-ms M]\n"
            "         [--refuse-user ID] [--seed N] [--threads N] "
            "[--max-body-mb N] [--log-level L]\n"
            "         [--tls-cert PEM --tls-key PEM [--tls-client-ca PEM]]\n"
            "A local server of Moesif's collector API for users "
            "(deploy/dev/MOESIF-DEV.md).\n"
            "Prints its base URL on stdout, writes it to --url-file, runs "
            "until SIGTERM/SIGINT.\n"
            "--refuse-user ID answers 400, storing nothing, every /v1 "
            "request holding a user\n"
            "with user_id ID (POST /_dev/faults refuse_user=ID sets it, "
            "refuse_user= clears it).\n"
            "--tls-cert/--tls-key serve HTTPS (the URL printed is https://); "
            "--tls-client-ca\nrequires a client certificate signed by that "
            "CA, refusing the handshake without.\n");
}

static int parse_listen(struct options *o, const char *v)
{
    const char *colon = strrchr(v, ':');
    char *end;
    unsigned long port;

    if (colon == NULL || (size_t)(colon - v) >= sizeof(o->host) || colon == v) {
        return -1;
    }
    port = strtoul(colon + 1, &end, 10);
    if (*end != '\0' || end == colon + 1 || port > 65535) {
        return -1;
    }
    memcpy(o->host, v, (size_t)(colon - v));
    o->host[colon - v] = '\0';
    o->port = (unsigned)port;
    return 0;
}

/* Returns 0, 1 for --help, -1 on a bad command line (message printed). */
static int parse_args(struct options *o, int argc, char **argv)
{
    char err[256];

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        char name[40];
        const char *value;
        const char *eq;

        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            return 1;
        }
        eq = strchr(arg, '=');
        /* only the name must fit: --refuse-user=ID may be long */
        if (strncmp(arg, "--", 2) != 0 ||
            (eq != NULL ? (size_t)(eq - arg) : strlen(arg)) >= sizeof(name)) {
            fprintf(stderr, "moesif-dev: unexpected argument '%s'\n", arg);
            return -1;
        }
        if (eq != NULL) {
            memcpy(name, arg + 2, (size_t)(eq - arg - 2));
            name[eq - arg - 2] = '\0';
            value = eq + 1;
        } else {
            snprintf(name, sizeof(name), "%s", arg + 2);
            if (i + 1 >= argc) {
                fprintf(stderr, "moesif-dev: option '%s' needs a value\n", arg);
                return -1;
            }
            value = argv[++i];
        }
        if (strcmp(name, "listen") == 0) {
            if (parse_listen(o, value) != 0) {
                fprintf(stderr,
                        "moesif-dev: --listen wants HOST:PORT, e.g. "
                        "127.0.0.1:0, not '%s'\n",
                        value);
                return -1;
            }
        } else if (strcmp(name, "app-id") == 0) {
            o->app_id = value;
        } else if (strcmp(name, "url-file") == 0) {
            o->url_file = value;
        } else if (strcmp(name, "tls-cert") == 0) {
            o->tls_cert = value;
        } else if (strcmp(name, "tls-key") == 0) {
            o->tls_key = value;
        } else if (strcmp(name, "tls-client-ca") == 0) {
            o->tls_client_ca = value;
        } else if (strcmp(name, "record") == 0) {
            o->record = value;
        } else if (strcmp(name, "threads") == 0) {
            long n = strtol(value, NULL, 10);
            if (n < 1 || n > 64) {
                fprintf(stderr, "moesif-dev: --threads wants 1 to 64\n");
                return -1;
            }
            o->threads = (unsigned)n;
        } else if (strcmp(name, "max-body-mb") == 0) {
            long n = strtol(value, NULL, 10);
            if (n < 1 || n > 4096) {
                fprintf(stderr, "moesif-dev: --max-body-mb wants 1 to "
                                "4096\n");
                return -1;
            }
            o->max_body_bytes = (size_t)n << 20;
        } else if (strcmp(name, "log-level") == 0) {
            int lvl = core_log_level_parse(value);
            if (lvl < 0) {
                fprintf(stderr, "moesif-dev: --log-level wants error, warn, "
                                "info or debug\n");
                return -1;
            }
            core_log_threshold = lvl;
        } else if (mfaults_config_set(&o->faults, name, value, err,
                                      sizeof(err)) != 0) {
            if (strncmp(err, "unknown", 7) == 0) {
                fprintf(stderr, "moesif-dev: unknown option '--%s'\n", name);
            } else {
                fprintf(stderr, "moesif-dev: --%s: %s\n", name, err);
            }
            return -1;
        }
    }
    if ((o->tls_cert == NULL) != (o->tls_key == NULL) ||
        (o->tls_client_ca != NULL && o->tls_cert == NULL)) {
        fprintf(stderr, "moesif-dev: --tls-cert and --tls-key go together, "
                        "and --tls-client-ca needs them\n");
        return -1;
    }
    if (o->app_id == NULL || o->app_id[0] == '\0') {
        fprintf(stderr, "moesif-dev: --app-id is required: the application "
                        "id clients must send\n");
        return -1;
    }
    return 0;
}

/* Writes url and a newline to path atomically (temp + rename). */
static int write_url_file(const char *path, const char *url)
{
    char tmp[4096];
    FILE *f;
    int n = snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());

    if (n < 0 || (size_t)n >= sizeof(tmp)) {
        return -1;
    }
    f = fopen(tmp, "w");
    if (f == NULL) {
        return -1;
    }
    fprintf(f, "%s\n", url);
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* The whole file at path, NUL-terminated (for libmicrohttpd's PEM
 * options), or NULL with a message on stderr. */
static char *read_pem(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;

    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 ||
        fseek(f, 0, SEEK_SET) != 0) {
        fprintf(stderr, "moesif-dev: cannot read '%s'\n", path);
        if (f != NULL) {
            fclose(f);
        }
        return NULL;
    }
    buf = core_malloc((size_t)n + 1);
    if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
        fprintf(stderr, "moesif-dev: cannot read '%s'\n", path);
        fclose(f);
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int main(int argc, char **argv)
{
    struct options o;
    struct sigaction sa;
    struct mstore *st = NULL;
    struct mfaults *flt = NULL;
    struct mdelay *dly = NULL;
    struct mserver *srv = NULL;
    struct mserver_config scfg;
    char *pem_cert = NULL, *pem_key = NULL, *pem_ca = NULL;
    FILE *record = NULL;
    char errstr[512];
    char url[128];
    unsigned port = 0;
    int64_t up_at_ms = 0;
    bool start_failing = false;
    int exit_code = 1;
    int rc;

    memset(&o, 0, sizeof(o));
    snprintf(o.host, sizeof(o.host), "127.0.0.1");
    o.threads = 2; /* the machines this runs on have two cores */
    o.max_body_bytes = (size_t)50 << 20; /* 50 MiB, far above any batch */
    mfaults_config_init(&o.faults);
    rc = parse_args(&o, argc, argv);
    if (rc != 0) {
        usage(rc > 0 ? stdout : stderr);
        return rc > 0 ? 0 : 2;
    }

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (o.record != NULL) {
        record = fopen(o.record, "a");
        if (record == NULL) {
            core_log(CORE_LOG_ERROR, "moesif-dev",
                     "msg=\"cannot open the record file\" path=\"%s\"",
                     o.record);
            goto out;
        }
    }
    st = mstore_new(record);
    flt = mfaults_new(&o.faults);
    dly = mdelay_new();
    memset(&scfg, 0, sizeof(scfg));
    if (o.tls_cert != NULL) {
        pem_cert = read_pem(o.tls_cert);
        pem_key = read_pem(o.tls_key);
        pem_ca = o.tls_client_ca != NULL ? read_pem(o.tls_client_ca) : NULL;
        if (pem_cert == NULL || pem_key == NULL ||
            (o.tls_client_ca != NULL && pem_ca == NULL)) {
            goto out;
        }
        scfg.tls_cert = pem_cert;
        scfg.tls_key = pem_key;
        scfg.tls_client_ca = pem_ca;
    }
    scfg.app_id = o.app_id;
    scfg.max_body_bytes = o.max_body_bytes;
    scfg.threads = o.threads;
    srv = mserver_new(&scfg, st, flt, dly);
    if (mserver_start(srv, o.host, o.port, &port, errstr, sizeof(errstr)) !=
        CORE_OK) {
        core_log(CORE_LOG_ERROR, "moesif-dev", "msg=\"%s\"", errstr);
        goto out;
    }
    snprintf(url, sizeof(url), "%s://%s:%u",
             o.tls_cert != NULL ? "https" : "http", o.host, port);
    if (o.url_file != NULL && write_url_file(o.url_file, url) != 0) {
        core_log(CORE_LOG_ERROR, "moesif-dev",
                 "msg=\"cannot write the url file\" path=\"%s\"", o.url_file);
        goto out;
    }
    printf("%s\n", url);
    fflush(stdout);
    core_log(CORE_LOG_INFO, "moesif-dev",
             "msg=\"listening\" url=%s threads=%u record=%s", url, o.threads,
             o.record != NULL ? o.record : "-");

    while (!stop_requested) {
        int64_t now;
        unsigned for_ms;

        sleep_ms(10);
        now = mnow_ms();
        if (mserver_running(srv)) {
            if (mfaults_refusal_due(flt, now, &for_ms)) {
                mserver_stop(srv);
                mserver_count_refusal(srv);
                up_at_ms = mnow_ms() + for_ms;
                core_log(CORE_LOG_INFO, "moesif-dev",
                         "msg=\"refusing connections\" for_ms=%u", for_ms);
            }
        } else if (now >= up_at_ms) {
            if (mserver_start(srv, o.host, port, &port, errstr,
                              sizeof(errstr)) == CORE_OK) {
                start_failing = false;
                core_log(CORE_LOG_INFO, "moesif-dev",
                         "msg=\"accepting connections again\" url=%s", url);
            } else if (!start_failing) {
                /* keep trying every tick; say so once */
                start_failing = true;
                core_log(CORE_LOG_WARN, "moesif-dev",
                         "msg=\"cannot listen again, retrying\" error=\"%s\"",
                         errstr);
            }
        }
    }
    core_log(CORE_LOG_INFO, "moesif-dev", "msg=\"stopping\"");
    exit_code = 0;
out:
    mserver_destroy(srv);
    mdelay_destroy(dly);
    mstore_destroy(st);
    mfaults_destroy(flt);
    if (record != NULL) {
        fclose(record);
    }
    free(pem_cert);
    free(pem_key);
    free(pem_ca);
    return exit_code;
}

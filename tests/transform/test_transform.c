/*
 * test_transform.c: tests of transform/transform.c (and the field rules of
 * transform/fields.c it drives).
 *
 * Most of the rules are data, not C: every case under
 * tests/transform/cases/ (USERPIPE_TRANSFORM_CASES overrides the folder) is
 * one cmocka test, named test_transform_event__<case>.  A case is
 *
 *   <name>.json    the event; or several events, one a line, run in order
 *                  through one transform: the last one is judged, the
 *                  earlier ones only build up the schema
 *   <name>.out     the expected output bytes (one final newline ignored)
 *   <name>.reject  or "code path" (path may be empty) on the first line;
 *                  an optional line "message: w1 w2 ..." lists words the
 *                  reject message must contain
 *   <name>.opts    optional: scope=name|path unknown=reject|drop|metadata
 *                  max_depth=N max_event_bytes=N, lines=0 (the whole file
 *                  is one event, newlines included), expect_new_keys=N
 *                  (transform_new_keys after the last event)
 *   <name>.seed    optional seed file, loaded with schema_load_file
 *   <name>.schema  optional: the schema expected after the last event, in
 *                  the seed file format schema_save_file writes
 *
 * so adding a case needs no C.  Every event is handed over in a buffer of
 * exactly its length (no NUL after it), so under ASan a read past the end
 * of the event is caught; every accepted output must parse again as JSON.
 *
 * The C tests below cover what cases cannot: transform_new's range checks,
 * transform_new_keys, transform_user_id, empty input and tombstones after
 * every kind of event, a NUL byte, NUL keys, the schema's cap, and
 * events too large or too deep for a file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../transform/transform.h"
#include "../../schemas/schema.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>

#define CASES_DIR_DEFAULT "tests/transform/cases"

/* ---- helpers ---------------------------------------------------------- */

struct text {
    char *p;
    size_t len;
};

/* Reads a whole file; returns 0 if it does not exist, -1 on another error. */
static int read_file(const char *path, struct text *t)
{
    FILE *f = fopen(path, "rb");
    size_t cap = 4096;

    t->p = NULL;
    t->len = 0;
    if (f == NULL) {
        return errno == ENOENT ? 0 : -1;
    }
    t->p = malloc(cap + 1);
    assert_non_null(t->p);
    for (;;) {
        size_t n = fread(t->p + t->len, 1, cap - t->len, f);
        t->len += n;
        if (n == 0) {
            break;
        }
        if (t->len == cap) {
            cap *= 2;
            t->p = realloc(t->p, cap + 1);
            assert_non_null(t->p);
        }
    }
    fclose(f);
    t->p[t->len] = '\0';
    return 1;
}

static void strip_newline(struct text *t)
{
    if (t->len > 0 && t->p[t->len - 1] == '\n') {
        t->p[--t->len] = '\0';
    }
}

/* Whether out[0..len) parses as JSON (yajl's tree parser, which needs a
 * NUL-terminated copy). */
static int json_ok(const char *out, size_t len, char *err, size_t err_size)
{
    char *copy = malloc(len + 1);
    yajl_val v;

    assert_non_null(copy);
    memcpy(copy, out, len);
    copy[len] = '\0';
    v = yajl_tree_parse(copy, err, err_size);
    free(copy);
    if (v == NULL) {
        return 0;
    }
    yajl_tree_free(v);
    return 1;
}

/* Runs one event from a buffer of exactly len bytes. */
static enum core_err run_exact(struct transform *tf, const char *ev, size_t len,
                               char **out, size_t *out_len,
                               struct core_reject *rej)
{
    char *copy = malloc(len > 0 ? len : 1);
    const char *o = NULL;
    size_t olen = 0;
    enum core_err rc;

    assert_non_null(copy);
    memcpy(copy, ev, len);
    rc = transform_event(tf, copy, len, &o, &olen, rej);
    *out = NULL;
    *out_len = 0;
    if (rc == CORE_OK) {
        char err[256];
        *out = malloc(olen + 1);
        assert_non_null(*out);
        memcpy(*out, o, olen);
        (*out)[olen] = '\0';
        *out_len = olen;
        if (!json_ok(o, olen, err, sizeof(err))) {
            free(copy);
            fail_msg("accepted output is not JSON: %.*s (%s)", (int)olen, o,
                     err);
        }
    }
    free(copy);
    return rc;
}

static struct transform *new_tf(const struct transform_config *cfg,
                                struct schema *sch)
{
    struct transform *tf = NULL;
    char errstr[256] = "";
    enum core_err rc = transform_new(cfg, sch, &tf, errstr, sizeof(errstr));

    if (rc != CORE_OK) {
        fail_msg("transform_new failed: %s", errstr);
    }
    assert_non_null(tf);
    return tf;
}

/* ---- data-driven cases ---------------------------------------------- */

struct tcase {
    char *dir;
    char *name;
    char *test_name;
};

struct copts {
    struct transform_config cfg;
    int lines;
    long expect_new_keys; /* -1: not checked */
};

static void parse_opts(const struct tcase *c, const char *s, struct copts *o)
{
    char buf[1024];
    char *save = NULL;
    char *tok;

    snprintf(buf, sizeof(buf), "%s", s);
    for (tok = strtok_r(buf, " \t\r\n", &save); tok != NULL;
         tok = strtok_r(NULL, " \t\r\n", &save)) {
        char *eq = strchr(tok, '=');
        const char *v;
        if (eq == NULL) {
            fail_msg("%s.opts: '%s' is not key=value", c->name, tok);
        }
        *eq = '\0';
        v = eq + 1;
        if (strcmp(tok, "scope") == 0 && strcmp(v, "name") == 0) {
            o->cfg.scope = TRANSFORM_SCOPE_NAME;
        } else if (strcmp(tok, "scope") == 0 && strcmp(v, "path") == 0) {
            o->cfg.scope = TRANSFORM_SCOPE_PATH;
        } else if (strcmp(tok, "unknown") == 0 && strcmp(v, "reject") == 0) {
            o->cfg.unknown_fields = TRANSFORM_UNKNOWN_REJECT;
        } else if (strcmp(tok, "unknown") == 0 && strcmp(v, "drop") == 0) {
            o->cfg.unknown_fields = TRANSFORM_UNKNOWN_DROP;
        } else if (strcmp(tok, "unknown") == 0 && strcmp(v, "metadata") == 0) {
            o->cfg.unknown_fields = TRANSFORM_UNKNOWN_METADATA;
        } else if (strcmp(tok, "max_depth") == 0) {
            o->cfg.max_depth = (unsigned)strtoul(v, NULL, 10);
        } else if (strcmp(tok, "max_event_bytes") == 0) {
            o->cfg.max_event_bytes = (size_t)strtoull(v, NULL, 10);
        } else if (strcmp(tok, "max_schema_keys") == 0) {
            o->cfg.max_schema_keys = (size_t)strtoull(v, NULL, 10);
        } else if (strcmp(tok, "lines") == 0) {
            o->lines = atoi(v);
        } else if (strcmp(tok, "expect_new_keys") == 0) {
            o->expect_new_keys = atol(v);
        } else {
            fail_msg("%s.opts: unknown option '%s=%s'", c->name, tok, v);
        }
    }
}

static char *case_path(const struct tcase *c, const char *ext)
{
    size_t n = strlen(c->dir) + strlen(c->name) + strlen(ext) + 3;
    char *p = malloc(n);
    assert_non_null(p);
    snprintf(p, n, "%s/%s.%s", c->dir, c->name, ext);
    return p;
}

static int case_file(const struct tcase *c, const char *ext, struct text *t)
{
    char *p = case_path(c, ext);
    int r = read_file(p, t);
    if (r < 0) {
        fail_msg("cannot read %s: %s", p, strerror(errno));
    }
    free(p);
    return r;
}

/* The schema as schema_save_file writes it, trailing newline removed. */
static void schema_text(const struct schema *sch, struct text *t)
{
    char path[] = "/tmp/userpipe-test-schema-XXXXXX";
    char errstr[256];
    int fd = mkstemp(path);

    assert_true(fd >= 0);
    close(fd);
    if (schema_save_file(sch, path, errstr, sizeof(errstr)) != CORE_OK) {
        unlink(path);
        fail_msg("schema_save_file: %s", errstr);
    }
    assert_int_equal(read_file(path, t), 1);
    unlink(path);
    strip_newline(t);
}

/* Checks the words of a "message: ..." line appear in msg. */
static void check_message_words(const struct tcase *c, const char *line,
                                const char *msg)
{
    char buf[512];
    char *save = NULL;

    snprintf(buf, sizeof(buf), "%s", line);
    for (char *w = strtok_r(buf, " \t\r", &save); w != NULL;
         w = strtok_r(NULL, " \t\r", &save)) {
        if (strstr(msg, w) == NULL) {
            fail_msg("%s: reject message \"%s\" does not mention \"%s\"",
                     c->name, msg, w);
        }
    }
}

/*
 * What a case holds while it runs.  A failed assertion longjmps out of the
 * case, past its frees, so these live here and are released when the next
 * case starts and at exit: ASan's leak report then speaks only of the code
 * under test.
 */
static struct case_res {
    struct text ev, want_out, want_rej, opts, seed, want_schema, got_schema;
    struct schema *sch;
    struct transform *tf;
    char *out;
} res;

static void case_res_release(void)
{
    free(res.ev.p);
    free(res.want_out.p);
    free(res.want_rej.p);
    free(res.opts.p);
    free(res.seed.p);
    free(res.want_schema.p);
    free(res.got_schema.p);
    transform_destroy(res.tf);
    schema_destroy(res.sch);
    free(res.out);
    memset(&res, 0, sizeof(res));
}

static void run_case(void **state)
{
    const struct tcase *c = *state;
    struct copts o;
    size_t out_len = 0;
    struct core_reject rej;
    enum core_err rc = CORE_OK;
    int have_out, have_rej, nevents = 0;

    case_res_release();
    res.sch = schema_new();
    transform_config_init(&o.cfg);
    o.lines = 1;
    o.expect_new_keys = -1;
    if (case_file(c, "opts", &res.opts)) {
        parse_opts(c, res.opts.p, &o);
    }
    if (case_file(c, "seed", &res.seed)) {
        char errstr[512];
        char *seed = case_path(c, "seed");
        enum core_err lrc =
            schema_load_file(res.sch, seed, errstr, sizeof(errstr));
        free(seed);
        if (lrc != CORE_OK) {
            fail_msg("%s: seed: %s", c->name, errstr);
        }
    }
    assert_int_equal(case_file(c, "json", &res.ev), 1);
    have_out = case_file(c, "out", &res.want_out);
    have_rej = case_file(c, "reject", &res.want_rej);
    if (have_out == have_rej) {
        fail_msg("%s: needs exactly one of %s.out and %s.reject", c->name,
                 c->name, c->name);
    }
    (void)case_file(c, "schema", &res.want_schema);
    strip_newline(&res.want_out);
    strip_newline(&res.want_schema);

    res.tf = new_tf(&o.cfg, res.sch);
    if (o.lines) {
        size_t start = 0;
        while (start < res.ev.len) {
            const char *nl = memchr(res.ev.p + start, '\n', res.ev.len - start);
            size_t end = nl != NULL ? (size_t)(nl - res.ev.p) : res.ev.len;
            if (end > start) {
                free(res.out);
                res.out = NULL;
                rc = run_exact(res.tf, res.ev.p + start, end - start, &res.out,
                               &out_len, &rej);
                nevents++;
            }
            start = end + 1;
        }
    } else {
        rc = run_exact(res.tf, res.ev.p, res.ev.len, &res.out, &out_len, &rej);
        nevents++;
    }
    if (nevents == 0) {
        fail_msg("%s.json holds no event", c->name);
    }

    if (have_out) {
        if (rc != CORE_OK) {
            fail_msg("%s: expected output %s\n  but rejected: %s \"%s\": %s",
                     c->name, res.want_out.p, core_reject_name(rej.code),
                     rej.path, rej.message);
        }
        if (out_len != res.want_out.len ||
            memcmp(res.out, res.want_out.p, out_len) != 0) {
            fail_msg("%s: output differs\n  expected: %s\n  actual:   %.*s",
                     c->name, res.want_out.p, (int)out_len, res.out);
        }
    } else {
        char *nl = strchr(res.want_rej.p, '\n');
        char *sp;
        const char *want_code, *want_path = "";
        const char *msg_line = NULL;

        if (nl != NULL) {
            *nl = '\0';
            if (strncmp(nl + 1, "message:", 8) == 0) {
                msg_line = nl + 9;
                nl = strchr(nl + 1, '\n');
                if (nl != NULL) {
                    *nl = '\0';
                }
            }
        }
        want_code = res.want_rej.p;
        sp = strchr(res.want_rej.p, ' ');
        if (sp != NULL) {
            *sp = '\0';
            want_path = sp + 1;
        }
        if (rc != CORE_ERR_REJECT) {
            fail_msg("%s: expected reject %s \"%s\"\n  but accepted: %.*s",
                     c->name, want_code, want_path, (int)out_len, res.out);
        }
        if (strcmp(core_reject_name(rej.code), want_code) != 0 ||
            strcmp(rej.path, want_path) != 0) {
            fail_msg("%s: expected reject %s \"%s\"\n  actual reject   %s "
                     "\"%s\": %s",
                     c->name, want_code, want_path, core_reject_name(rej.code),
                     rej.path, rej.message);
        }
        /* one human sentence */
        if (rej.message[0] == '\0' || strchr(rej.message, '\n') != NULL) {
            fail_msg("%s: reject message is not one sentence: \"%s\"", c->name,
                     rej.message);
        }
        if (msg_line != NULL) {
            check_message_words(c, msg_line, rej.message);
        }
        if (transform_new_keys(res.tf) != 0) {
            fail_msg("%s: a rejected event reports %zu new keys", c->name,
                     transform_new_keys(res.tf));
        }
    }
    if (o.expect_new_keys >= 0 &&
        transform_new_keys(res.tf) != (size_t)o.expect_new_keys) {
        fail_msg("%s: transform_new_keys is %zu, expected %ld", c->name,
                 transform_new_keys(res.tf), o.expect_new_keys);
    }
    if (res.want_schema.p != NULL) {
        schema_text(res.sch, &res.got_schema);
        if (strcmp(res.got_schema.p, res.want_schema.p) != 0) {
            fail_msg("%s: schema differs\n  expected: %s\n  actual:   %s",
                     c->name, res.want_schema.p, res.got_schema.p);
        }
    }
    case_res_release();
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names of the cases in dir (files <name>.json), sorted. */
static char **list_cases(const char *dir, size_t *n)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char **names = NULL;
    size_t count = 0, cap = 0;

    *n = 0;
    if (d == NULL) {
        return NULL;
    }
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len <= 5 || strcmp(e->d_name + len - 5, ".json") != 0) {
            continue;
        }
        if (count == cap) {
            cap = cap ? cap * 2 : 64;
            names = realloc(names, cap * sizeof(*names));
            if (names == NULL) {
                abort();
            }
        }
        names[count] = strndup(e->d_name, len - 5);
        if (names[count] == NULL) {
            abort();
        }
        count++;
    }
    closedir(d);
    qsort(names, count, sizeof(*names), cmp_str);
    *n = count;
    return names;
}

/* ---- C tests: configuration ----------------------------------------- */

static void expect_good_config(const struct transform_config *cfg)
{
    struct schema *sch = schema_new();
    struct transform *tf = NULL;
    char errstr[256] = "";
    enum core_err rc = transform_new(cfg, sch, &tf, errstr, sizeof(errstr));

    if (rc != CORE_OK) {
        fail_msg("transform_new refused a good config: %s", errstr);
    }
    assert_non_null(tf);
    transform_destroy(tf);
    schema_destroy(sch);
}

static void test_transform_config_init__design_defaults(void **state)
{
    struct transform_config cfg;

    (void)state;
    memset(&cfg, 0xa5, sizeof(cfg));
    transform_config_init(&cfg);
    assert_int_equal(cfg.scope, TRANSFORM_SCOPE_NAME);
    assert_int_equal(cfg.unknown_fields, TRANSFORM_UNKNOWN_REJECT);
    assert_int_equal(cfg.max_event_bytes, 1024 * 1024);
    assert_int_equal(cfg.max_depth, 64);
}

static void test_transform_new__range_limits_accepted(void **state)
{
    struct transform_config cfg;

    (void)state;
    transform_config_init(&cfg);
    expect_good_config(&cfg);
    cfg.max_event_bytes = 16;
    cfg.max_depth = 2;
    expect_good_config(&cfg);
    cfg.max_event_bytes = 64u << 20;
    cfg.max_depth = 1024;
    cfg.scope = TRANSFORM_SCOPE_PATH;
    cfg.unknown_fields = TRANSFORM_UNKNOWN_METADATA;
    expect_good_config(&cfg);
    cfg.unknown_fields = TRANSFORM_UNKNOWN_DROP;
    expect_good_config(&cfg);
}

static void test_transform_new__config_is_copied(void **state)
{
    struct transform_config cfg;
    struct schema *sch = schema_new();
    struct transform *tf;
    char *out;
    size_t out_len;
    struct core_reject rej;
    static const char ev[] = "{\"user_id\":\"u\",\"foo\":1}";

    (void)state;
    transform_config_init(&cfg);
    cfg.unknown_fields = TRANSFORM_UNKNOWN_DROP;
    tf = new_tf(&cfg, sch);
    cfg.unknown_fields = TRANSFORM_UNKNOWN_REJECT;
    cfg.max_event_bytes = 16;
    assert_int_equal(run_exact(tf, ev, strlen(ev), &out, &out_len, &rej),
                     CORE_OK);
    assert_string_equal(out, "{\"user_id\":\"u\"}");
    free(out);
    transform_destroy(tf);
    schema_destroy(sch);
}

static void test_transform_destroy__accepts_null(void **state)
{
    (void)state;
    transform_destroy(NULL);
}

/* ---- C tests: transform_new_keys -------------------------------------- */

static void expect_event(struct transform *tf, const char *ev,
                         enum core_err want_rc, size_t want_new)
{
    char *out;
    size_t out_len;
    struct core_reject rej;
    enum core_err rc = run_exact(tf, ev, strlen(ev), &out, &out_len, &rej);

    if (rc != want_rc) {
        fail_msg("%s: rc %d, expected %d (%s %s: %s)", ev, rc, want_rc,
                 core_reject_name(rej.code), rej.path, rej.message);
    }
    if (transform_new_keys(tf) != want_new) {
        fail_msg("%s: transform_new_keys %zu, expected %zu", ev,
                 transform_new_keys(tf), want_new);
    }
    free(out);
}

static void test_transform_new_keys__counts_keys_new_to_the_schema(void **state)
{
    struct transform_config cfg;
    struct schema *sch = schema_new();
    struct transform *tf;

    (void)state;
    transform_config_init(&cfg);
    tf = new_tf(&cfg, sch);
    assert_int_equal(transform_new_keys(tf), 0);
    expect_event(tf, "{\"user_id\":\"u\"}", CORE_OK, 0);
    expect_event(tf,
                 "{\"user_id\":\"u\",\"metadata\":{\"a\":1,\"b\":{\"c\":"
                 "true},\"d.e\":[{\"a\":2}]}}",
                 CORE_OK, 4);
    assert_int_equal(schema_count(sch), 4);
    /* the same keys again: nothing new */
    expect_event(tf, "{\"user_id\":\"u\",\"metadata\":{\"a\":5,\"c\":false}}",
                 CORE_OK, 0);
    /* one old, one new, one null (records nothing) */
    expect_event(tf,
                 "{\"user_id\":\"u\",\"metadata\":{\"a\":5,\"f\":\"s\","
                 "\"g\":null}}",
                 CORE_OK, 1);
    assert_int_equal(schema_count(sch), 5);
    /* a rejected event: 0, and the schema is unchanged */
    expect_event(tf, "{\"user_id\":\"u\",\"metadata\":{\"h\":1,\"a\":\"s\"}}",
                 CORE_ERR_REJECT, 0);
    assert_int_equal(schema_count(sch), 5);
    assert_int_equal(schema_get(sch, "h", 1, core_hash64("h", 1)),
                     SCHEMA_TYPE_NONE);
    expect_event(tf, "{\"user_id\":\"u\",\"metadata\":{\"h\":\"s\"}}", CORE_OK,
                 1);
    transform_destroy(tf);
    schema_destroy(sch);
}

static void test_transform_new_keys__path_scope_counts_paths(void **state)
{
    struct transform_config cfg;
    struct schema *sch = schema_new();
    struct transform *tf;

    (void)state;
    transform_config_init(&cfg);
    cfg.scope = TRANSFORM_SCOPE_PATH;
    tf = new_tf(&cfg, sch);
    expect_event(tf,
                 "{\"user_id\":\"u\",\"metadata\":{\"a\":1,\"b\":{\"a\":2},"
                 "\"l\":[{\"a\":3},{\"a\":4}]}}",
                 CORE_OK, 5); /* a b b.a l l[].a */
    expect_event(tf, "{\"user_id\":\"u\",\"metadata\":{\"c\":{\"a\":1}}}",
                 CORE_OK, 2);
    assert_int_equal(schema_count(sch), 7);
    transform_destroy(tf);
    schema_destroy(sch);
}

static void test_transform_new_keys__moved_fields_count(void **state)
{
    struct transform_config cfg;
    struct schema *sch = schema_new();
    struct transform *tf;

    (void)state;
    transform_config_init(&cfg);
    cfg.unknown_fields = TRANSFORM_UNKNOWN_METADATA;
    tf = new_tf(&cfg, sch);
    expect_event(tf, "{\"user_id\":\"u\",\"plan\":\"pro\",\"seats\":3}",
                 CORE_OK, 2);
    assert_int_equal(schema_get(sch, "plan", 4, core_hash64("plan", 4)),
                     SCHEMA_TYPE_STRING);
    assert_int_equal(schema_get(sch, "seats", 5, core_hash64("seats", 5)),
                     SCHEMA_TYPE_NUMBER);
    transform_destroy(tf);
    schema_destroy(sch);
}

/* ---- C tests: transform_user_id ------------------------------------------ */

static void expect_user_id(const char *ev, const char *want, size_t want_len)
{
    struct transform_config cfg;
    struct schema *sch = schema_new();
    struct transform *tf;
    char *in = malloc(strlen(ev));
    const char *out, *uid;
    size_t out_len, uid_len;
    struct core_reject rej;
    enum core_err rc;

    assert_non_null(in);
    memcpy(in, ev, strlen(ev));
    transform_config_init(&cfg);
    cfg.unknown_fields = TRANSFORM_UNKNOWN_METADATA;
    tf = new_tf(&cfg, sch);
    rc = transform_event(tf, in, strlen(ev), &out, &out_len, &rej);
    /* transform.h: the id points into the event's buffer or into tf, so
     * it is read before the buffer is reused; after the next call on tf
     * it is not read at all */
    if (rc != CORE_OK) {
        free(in);
        transform_destroy(tf);
        schema_destroy(sch);
        fail_msg("%s: rejected: %s", ev, rej.message);
    }
    transform_user_id(tf, &uid, &uid_len);
    if (uid_len != want_len || memcmp(uid, want, want_len) != 0) {
        char got[64];
        snprintf(got, sizeof(got), "%.*s", (int)(uid_len > 60 ? 60 : uid_len),
                 uid);
        free(in);
        transform_destroy(tf);
        schema_destroy(sch);
        fail_msg("%s: transform_user_id gave \"%s\" (%zu bytes), expected "
                 "\"%s\"",
                 ev, got, uid_len, want);
    }
    free(in);
    transform_destroy(tf);
    schema_destroy(sch);
}

static void test_transform_user_id__unescaped(void **state)
{
    (void)state;
    expect_user_id("{\"user_id\":\"\\u0041b\\n\\u00e9\"}", "Ab\n\xc3\xa9", 5);
    expect_user_id("{\"foo\":1,\"user_id\":\"\\\"q\\\\\"}", "\"q\\", 3);
}

/* "valid until the next call on tf" (transform.h): the id must not point
 * into the caller's input, which was only borrowed for the call. */
static void test_transform_user_id__points_into_buffer_or_tf(void **state)
{
    (void)state;
    expect_user_id("{\"user_id\":\"u.1\"}", "u.1", 3);
    expect_user_id("{\"metadata\":{\"a.b\":1},\"company_id\":null,"
                   "\"user_id\":\"usr_00025\"}",
                   "usr_00025", 9);
}

/* The id follows the last accepted event. */
static void test_transform_user_id__follows_each_event(void **state)
{
    struct transform_config cfg;
    struct schema *sch = schema_new();
    struct transform *tf;
    static const char *const evs[] = {
        "{\"user_id\":\"first\"}", "{\"user_id\":\"\\u0032nd\"}",
        "{\"company_id\":\"c\",\"user_id\":\"3\"}"};
    static const char *const ids[] = {"first", "2nd", "3"};
    const char *out, *uid;
    size_t out_len, uid_len;
    struct core_reject rej;

    (void)state;
    transform_config_init(&cfg);
    tf = new_tf(&cfg, sch);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(
            transform_event(tf, evs[i], strlen(evs[i]), &out, &out_len, &rej),
            CORE_OK);
        transform_user_id(tf, &uid, &uid_len);
        assert_int_equal(uid_len, strlen(ids[i]));
        assert_memory_equal(uid, ids[i], uid_len);
    }
    transform_destroy(tf);
    schema_destroy(sch);
}

/* ---- C tests: inputs a case file cannot hold --------------------------- */

static void expect_reject(struct transform *tf, const char *ev, size_t len,
                          enum core_reject_code code, const char *path)
{
    char *out;
    size_t out_len;
    struct core_reject rej;
    enum core_err rc = run_exact(tf, ev, len, &out, &out_len, &rej);

    if (rc != CORE_ERR_REJECT) {
        fail_msg("expected %s, but accepted: %.*s", core_reject_name(code),
                 (int)out_len, out);
    }
    if (rej.code != code || strcmp(rej.path, path) != 0) {
        fail_msg("expected %s \"%s\", got %s \"%s\": %s",
                 core_reject_name(code), path, core_reject_name(rej.code),
                 rej.path, rej.message);
    }
}

/* Issue 20: an empty message, a tombstone and a message of whitespace get
 * one code each whatever came before: the parser's handle is reused, and
 * after a valid event an empty input parsed as nothing (missing_user_id),
 * after a broken one as a premature end (invalid_json). */
static void test_transform_event__empty_and_tombstone_whatever_before(
    void **state)
{
    static const char *const before[] = {
        NULL, /* a fresh transform */
        "{\"user_id\":\"u\"}",
        "{\"user_id\":",
        "{}",
        "[1]",
        "{\"user_id\":\"u\",\"metadata\":{\"a\":{\"b\":[1,2]}}}",
    };
    struct transform_config cfg;
    struct schema *sch = schema_new();

    (void)state;
    transform_config_init(&cfg);
    for (size_t i = 0; i < sizeof(before) / sizeof(before[0]); i++) {
        for (int kind = 0; kind < 3; kind++) {
            struct transform *tf = new_tf(&cfg, sch);
            const char *out;
            size_t out_len;
            struct core_reject rej;

            if (before[i] != NULL) {
                (void)!transform_event(tf, before[i], strlen(before[i]), &out,
                                       &out_len, &rej);
            }
            switch (kind) {
            case 0:
                expect_reject(tf, "", 0, CORE_REJECT_EMPTY_MESSAGE, "");
                break;
            case 1:
                assert_int_equal(transform_event(tf, NULL, 0, &out, &out_len,
                                                 &rej),
                                 CORE_ERR_REJECT);
                assert_int_equal(rej.code, CORE_REJECT_TOMBSTONE);
                assert_string_equal(rej.path, "");
                break;
            default:
                expect_reject(tf, " \n\t ", 4, CORE_REJECT_INVALID_JSON, "");
                break;
            }
            /* and the transform goes on judging events */
            expect_reject(tf, "{}", 2, CORE_REJECT_MISSING_USER_ID, "");
            expect_reject(tf, "", 0, CORE_REJECT_EMPTY_MESSAGE, "");
            expect_event(tf, "{\"user_id\":\"v\"}", CORE_OK, 0);
            transform_destroy(tf);
        }
    }
    schema_destroy(sch);
}

/* Issue 20: a NUL in a metadata key passed and its claim, applied with
 * strlen, gave the type to another key; now every key holding one is
 * invalid_key, and the schema records nothing of the event. */
static void test_transform_event__nul_key_records_nothing(void **state)
{
    static const char ev[] =
        "{\"user_id\":\"n2\",\"metadata\":{\"z\":1,\"a\\u0000b\":5}}";
    struct transform_config cfg;
    struct schema *sch = schema_new();
    struct transform *tf;

    (void)state;
    transform_config_init(&cfg);
    tf = new_tf(&cfg, sch);
    expect_reject(tf, ev, sizeof(ev) - 1, CORE_REJECT_INVALID_KEY,
                  "metadata.a\\u0000b");
    assert_int_equal(schema_count(sch), 0);
    assert_int_equal(transform_new_keys(tf), 0);
    cfg.defer_new_keys = 1;
    transform_destroy(tf);
    tf = new_tf(&cfg, sch);
    expect_reject(tf, ev, sizeof(ev) - 1, CORE_REJECT_INVALID_KEY,
                  "metadata.a\\u0000b");
    assert_int_equal(transform_new_keys(tf), 0);
    transform_destroy(tf);
    schema_destroy(sch);
}

/* schema.max_keys: the schema never grows past it, whatever the events. */
static void test_transform_event__schema_full_bounds_the_schema(void **state)
{
    struct transform_config cfg;
    struct schema *sch = schema_new();
    struct transform *tf;
    char ev[128];

    (void)state;
    transform_config_init(&cfg);
    cfg.max_schema_keys = 50;
    tf = new_tf(&cfg, sch);
    for (int i = 0; i < 200; i++) {
        snprintf(ev, sizeof(ev),
                 "{\"user_id\":\"u\",\"metadata\":{\"id%d\":1,\"k\":2}}",
                 i);
        if (i < 49) {
            expect_event(tf, ev, CORE_OK, i == 0 ? 2 : 1);
        } else {
            char path[32];
            snprintf(path, sizeof(path), "metadata.id%d", i);
            expect_reject(tf, ev, strlen(ev), CORE_REJECT_SCHEMA_FULL, path);
        }
    }
    assert_int_equal(schema_count(sch), 50);
    /* known keys are still fine */
    expect_event(tf, "{\"user_id\":\"u\",\"metadata\":{\"id3\":7}}", CORE_OK,
                 0);
    transform_destroy(tf);
    schema_destroy(sch);
}

static void test_transform_event__nul_byte_is_invalid_json(void **state)
{
    struct transform_config cfg;
    struct schema *sch = schema_new();
    struct transform *tf;
    static const char ev[] = "{\"user_id\":\"u\0\"}";

    (void)state;
    transform_config_init(&cfg);
    tf = new_tf(&cfg, sch);
    expect_reject(tf, ev, sizeof(ev) - 1, CORE_REJECT_INVALID_JSON, "");
    transform_destroy(tf);
    schema_destroy(sch);
}

/* Only [buf, buf+len) is the event: what follows must not be read. */
static void test_transform_event__reads_only_len_bytes(void **state)
{
    struct transform_config cfg;
    struct schema *sch = schema_new();
    struct transform *tf;
    static const char buf[] = "{\"user_id\":\"u\"}  ,garbage";
    const char *out;
    size_t out_len;
    struct core_reject rej;

    (void)state;
    transform_config_init(&cfg);
    tf = new_tf(&cfg, sch);
    assert_int_equal(transform_event(tf, buf, 17, &out, &out_len, &rej),
                     CORE_OK);
    assert_int_equal(out_len, 15);
    assert_memory_equal(out, "{\"user_id\":\"u\"}", 15);
    transform_destroy(tf);
    schema_destroy(sch);
}

/* Builds {"user_id":"u","metadata":{"k0":0,...}} with n keys; a
 * duplicate of k0 at the end when dup. */
static char *many_keys_event(size_t n, int dup, size_t *len)
{
    size_t cap = 64 + n * 24;
    char *p = malloc(cap);
    size_t o;

    assert_non_null(p);
    o = (size_t)snprintf(p, cap, "{\"user_id\":\"u\",\"metadata\":{");
    for (size_t i = 0; i < n; i++) {
        o += (size_t)snprintf(p + o, cap - o, "%s\"k.%zu\":%zu", i ? "," : "",
                              i, i);
    }
    if (dup) {
        o += (size_t)snprintf(p + o, cap - o, ",\"k_0\":1");
    }
    o += (size_t)snprintf(p + o, cap - o, "}}");
    *len = o;
    return p;
}

static void test_transform_event__many_keys_in_one_object(void **state)
{
    struct transform_config cfg;
    struct schema *sch = schema_new();
    struct transform *tf;
    size_t len;
    char *ev;
    char *out;
    size_t out_len;
    struct core_reject rej;

    (void)state;
    transform_config_init(&cfg);
    tf = new_tf(&cfg, sch);
    ev = many_keys_event(20000, 0, &len);
    assert_int_equal(run_exact(tf, ev, len, &out, &out_len, &rej), CORE_OK);
    assert_int_equal(out_len, len);
    assert_int_equal(transform_new_keys(tf), 20000);
    assert_non_null(strstr(out, "\"k_19999\":19999}}"));
    assert_null(strstr(out, "k."));
    free(out);
    free(ev);
    ev = many_keys_event(20000, 1, &len);
    expect_reject(tf, ev, len, CORE_REJECT_DUPLICATE_KEY, "metadata.k_0");
    free(ev);
    /* a small event after the big ones still works */
    expect_event(tf, "{\"user_id\":\"u\",\"metadata\":{\"k.0\":1,\"x\":[]}}",
                 CORE_OK, 1);
    transform_destroy(tf);
    schema_destroy(sch);
}

/* Nesting: exactly max_depth accepted, one more rejected, at 1024. */
static char *nested_event(unsigned depth, size_t *len)
{
    /* {"user_id":"u","metadata":{"a":[[...[1]...]]}}: the event and
     * metadata are 2 levels, the rest arrays */
    size_t cap = 64 + 2 * (size_t)depth;
    char *p = malloc(cap);
    size_t o;

    assert_non_null(p);
    o = (size_t)snprintf(p, cap, "{\"user_id\":\"u\",\"metadata\":{\"a\":");
    for (unsigned i = 2; i < depth; i++) {
        p[o++] = '[';
    }
    p[o++] = '1';
    for (unsigned i = 2; i < depth; i++) {
        p[o++] = ']';
    }
    p[o++] = '}';
    p[o++] = '}';
    *len = o;
    return p;
}

static void test_transform_event__depth_1024(void **state)
{
    struct transform_config cfg;
    struct schema *sch = schema_new();
    struct transform *tf;
    size_t len;
    char *ev, *out;
    size_t out_len;
    struct core_reject rej;

    (void)state;
    transform_config_init(&cfg);
    cfg.max_depth = 1024;
    tf = new_tf(&cfg, sch);
    ev = nested_event(1024, &len);
    assert_int_equal(run_exact(tf, ev, len, &out, &out_len, &rej), CORE_OK);
    assert_int_equal(out_len, len);
    free(out);
    free(ev);
    ev = nested_event(1025, &len);
    assert_int_equal(run_exact(tf, ev, len, &out, &out_len, &rej),
                     CORE_ERR_REJECT);
    assert_int_equal(rej.code, CORE_REJECT_TOO_DEEP);
    free(ev);
    /* 100000 levels with the default limit: rejected, no stack trouble */
    transform_destroy(tf);
    transform_config_init(&cfg);
    tf = new_tf(&cfg, sch);
    ev = nested_event(100000, &len);
    assert_int_equal(run_exact(tf, ev, len, &out, &out_len, &rej),
                     CORE_ERR_REJECT);
    assert_int_equal(rej.code, CORE_REJECT_TOO_DEEP);
    free(ev);
    transform_destroy(tf);
    schema_destroy(sch);
}

/* too_large is judged on the length alone, at the exact boundary. */
static void test_transform_event__too_large_boundary(void **state)
{
    struct transform_config cfg;
    struct schema *sch = schema_new();
    struct transform *tf;
    size_t len;
    char *ev, *out;
    size_t out_len;
    struct core_reject rej;

    (void)state;
    ev = many_keys_event(5000, 0, &len);
    transform_config_init(&cfg);
    cfg.max_event_bytes = len;
    tf = new_tf(&cfg, sch);
    assert_int_equal(run_exact(tf, ev, len, &out, &out_len, &rej), CORE_OK);
    free(out);
    transform_destroy(tf);
    cfg.max_event_bytes = len - 1;
    tf = new_tf(&cfg, sch);
    expect_reject(tf, ev, len, CORE_REJECT_TOO_LARGE, "");
    transform_destroy(tf);
    free(ev);
    schema_destroy(sch);
}

/* The output of one call stays intact while its caller reads it, and the
 * same handle serves many events of mixed outcomes. */
static void test_transform_event__reuse_after_rejects(void **state)
{
    struct transform_config cfg;
    struct schema *sch = schema_new();
    struct transform *tf;

    (void)state;
    transform_config_init(&cfg);
    cfg.unknown_fields = TRANSFORM_UNKNOWN_METADATA;
    tf = new_tf(&cfg, sch);
    for (int i = 0; i < 200; i++) {
        expect_event(tf, "{\"user_id\":\"u\",\"x.y\":1,\"metadata\":{}}",
                     CORE_OK, i == 0 ? 1 : 0);
        static const char *const bad[][3] = {
            {"{\"user_id\":\"u\",\"x_y\":\"s\"}", "type_conflict", "x_y"},
            {"{\"user_id\":\"u\",", "invalid_json", ""},
            {"[[[", "invalid_json", ""},
            {"{}", "missing_user_id", ""},
        };
        for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
            expect_reject(tf, bad[k][0], strlen(bad[k][0]),
                          core_reject_from_name(bad[k][1], strlen(bad[k][1])),
                          bad[k][2]);
        }
    }
    transform_destroy(tf);
    schema_destroy(sch);
}

/* ---- main --------------------------------------------------------------- */

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_transform_config_init__design_defaults),
        cmocka_unit_test(test_transform_new__range_limits_accepted),
        cmocka_unit_test(test_transform_new__config_is_copied),
        cmocka_unit_test(test_transform_destroy__accepts_null),
        cmocka_unit_test(
            test_transform_new_keys__counts_keys_new_to_the_schema),
        cmocka_unit_test(test_transform_new_keys__path_scope_counts_paths),
        cmocka_unit_test(test_transform_new_keys__moved_fields_count),
        cmocka_unit_test(test_transform_user_id__unescaped),
        cmocka_unit_test(test_transform_user_id__points_into_buffer_or_tf),
        cmocka_unit_test(test_transform_user_id__follows_each_event),
        cmocka_unit_test(
            test_transform_event__empty_and_tombstone_whatever_before),
        cmocka_unit_test(test_transform_event__nul_key_records_nothing),
        cmocka_unit_test(test_transform_event__schema_full_bounds_the_schema),
        cmocka_unit_test(test_transform_event__nul_byte_is_invalid_json),
        cmocka_unit_test(test_transform_event__reads_only_len_bytes),
        cmocka_unit_test(test_transform_event__many_keys_in_one_object),
        cmocka_unit_test(test_transform_event__depth_1024),
        cmocka_unit_test(test_transform_event__too_large_boundary),
        cmocka_unit_test(test_transform_event__reuse_after_rejects),
    };
    const char *dir = getenv("USERPIPE_TRANSFORM_CASES");
    struct CMUnitTest *cases;
    struct tcase *tc;
    char **names;
    size_t n;
    int failed;

    if (dir == NULL || dir[0] == '\0') {
        dir = CASES_DIR_DEFAULT;
    }
    failed = cmocka_run_group_tests_name("transform", tests, NULL, NULL);

    names = list_cases(dir, &n);
    if (n == 0) {
        fprintf(stderr,
                "test_transform: no cases in '%s' (run from the repository "
                "root or set USERPIPE_TRANSFORM_CASES)\n",
                dir);
        return 1;
    }
    cases = calloc(n, sizeof(*cases));
    tc = calloc(n, sizeof(*tc));
    if (cases == NULL || tc == NULL) {
        abort();
    }
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(names[i]) + 32;
        tc[i].dir = (char *)dir;
        tc[i].name = names[i];
        tc[i].test_name = malloc(len);
        if (tc[i].test_name == NULL) {
            abort();
        }
        snprintf(tc[i].test_name, len, "test_transform_event__%s", names[i]);
        cases[i].name = tc[i].test_name;
        cases[i].test_func = run_case;
        cases[i].initial_state = &tc[i];
    }
    /* the group is built at run time, so its size is not a sizeof: the
     * function behind cmocka_run_group_tests_name takes it directly */
    failed += _cmocka_run_group_tests("transform_cases", cases, n, NULL, NULL);
    case_res_release();

    for (size_t i = 0; i < n; i++) {
        free(tc[i].test_name);
        free(names[i]);
    }
    free(names);
    free(tc);
    free(cases);
    return failed == 0 ? 0 : 1;
}

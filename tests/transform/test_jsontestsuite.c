/*
 * test_jsontestsuite.c: the JSONTestSuite parsing corpus (Nicolas Seriot's
 * test_parsing/, copied under tests/data/) through transform/transform.c.
 *
 * Each file's bytes become the metadata value of a user event,
 * {"user_id":"u1","metadata":{"value":<file bytes>}}, run through a fresh
 * transform with the default configuration:
 *   n_  must be rejected as invalid_json (or too_deep, for the deep ones);
 *   y_  must be accepted, unless the file holds a key twice in one object
 *       (after dots become '_'), then duplicate_key, or a key holding
 *       U+0000 (y_object_escaped_null_in_key), then invalid_key (issue
 *       20: no key may hold one); an accepted output must parse again as
 *       JSON (yajl_tree_parse);
 *   i_  either, never a crash or a hang; an accepted output must parse.
 * The folder is found relative to the repository root, where the tests run;
 * USERPIPE_JSONTESTSUITE overrides it.  Per-prefix outcome counts are
 * printed at the end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../transform/transform.h"
#include "../../schemas/schema.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#define SUITE_DIR_DEFAULT "tests/data/JSONTestSuite/test_parsing"

static const char *suite_dir(void)
{
    const char *d = getenv("USERPIPE_JSONTESTSUITE");
    return d != NULL && d[0] != '\0' ? d : SUITE_DIR_DEFAULT;
}

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *p;
    long n;

    if (f == NULL) {
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    p = malloc((size_t)n + 1);
    assert_non_null(p);
    *len = fread(p, 1, (size_t)n, f);
    p[*len] = '\0';
    fclose(f);
    return p;
}

/* Whether a parsed value holds an object with a key twice, comparing keys
 * as the transform will write them (every '.' a '_').  yajl's tree keeps
 * duplicates as separate members, so they can be seen here. */
static int has_duplicate_key(yajl_val v)
{
    if (YAJL_IS_OBJECT(v)) {
        size_t n = v->u.object.len;
        for (size_t i = 0; i < n; i++) {
            for (size_t j = i + 1; j < n; j++) {
                const char *a = v->u.object.keys[i];
                const char *b = v->u.object.keys[j];
                size_t k = 0;
                while (a[k] != '\0' && b[k] != '\0' &&
                       (a[k] == b[k] || ((a[k] == '.' || a[k] == '_') &&
                                         (b[k] == '.' || b[k] == '_')))) {
                    k++;
                }
                if (a[k] == '\0' && b[k] == '\0') {
                    return 1;
                }
            }
            if (has_duplicate_key(v->u.object.values[i])) {
                return 1;
            }
        }
    } else if (YAJL_IS_ARRAY(v)) {
        for (size_t i = 0; i < v->u.array.len; i++) {
            if (has_duplicate_key(v->u.array.values[i])) {
                return 1;
            }
        }
    }
    return 0;
}

struct counts {
    unsigned accepted, invalid_json, too_deep, duplicate_key, other;
};

static struct counts counts_y, counts_n, counts_i;

static const char *const prefixes[] = {"y_", "n_", "i_"};

struct suite_file {
    char *name;
};

/* What a file's test holds while it runs: a failed assertion longjmps past
 * the test's frees, so these are released when the next test starts and at
 * exit, and ASan's leak report speaks only of the code under test. */
static struct file_res {
    char *data, *ev, *copy;
    struct schema *sch;
    struct transform *tf;
} res;

static void file_res_release(void)
{
    free(res.data);
    free(res.ev);
    free(res.copy);
    transform_destroy(res.tf);
    schema_destroy(res.sch);
    memset(&res, 0, sizeof(res));
}


/* Whether data[0..len) holds the escape \u0000 (a U+0000 in a string). */
static int holds_nul_escape(const char *data, size_t len)
{
    for (size_t i = 0; i + 6 <= len; i++) {
        if (memcmp(data + i, "\\u0000", 6) == 0) {
            return 1;
        }
    }
    return 0;
}

static void run_file(void **state)
{
    const struct suite_file *sf = *state;
    const char *dir = suite_dir();
    char path[4096];
    char *copy;
    size_t len = 0, ev_len;
    static const char head[] = "{\"user_id\":\"u1\",\"metadata\":{\"value\":";
    static const char tail[] = "}}";
    struct transform_config cfg;
    char errstr[256];
    const char *out;
    size_t out_len;
    struct core_reject rej;
    enum core_err rc;
    struct counts *cnt;
    char kind = sf->name[0];

    file_res_release();
    res.sch = schema_new();
    snprintf(path, sizeof(path), "%s/%s", dir, sf->name);
    res.data = read_all(path, &len);
    if (res.data == NULL) {
        fail_msg("cannot read %s", path);
    }
    ev_len = sizeof(head) - 1 + len + sizeof(tail) - 1;
    res.ev = malloc(ev_len);
    assert_non_null(res.ev);
    memcpy(res.ev, head, sizeof(head) - 1);
    memcpy(res.ev + sizeof(head) - 1, res.data, len);
    memcpy(res.ev + sizeof(head) - 1 + len, tail, sizeof(tail) - 1);

    transform_config_init(&cfg);
    assert_int_equal(
        transform_new(&cfg, res.sch, &res.tf, errstr, sizeof(errstr)), CORE_OK);
    rc = transform_event(res.tf, res.ev, ev_len, &out, &out_len, &rej);

    cnt = kind == 'y' ? &counts_y : kind == 'n' ? &counts_n : &counts_i;
    if (rc == CORE_OK) {
        cnt->accepted++;
    } else if (rej.code == CORE_REJECT_INVALID_JSON) {
        cnt->invalid_json++;
    } else if (rej.code == CORE_REJECT_TOO_DEEP) {
        cnt->too_deep++;
    } else if (rej.code == CORE_REJECT_DUPLICATE_KEY) {
        cnt->duplicate_key++;
    } else {
        cnt->other++;
    }
    print_message("%s: %s%s%s\n", sf->name,
                  rc == CORE_OK ? "accepted" : core_reject_name(rej.code),
                  rc == CORE_OK ? "" : ": ", rc == CORE_OK ? "" : rej.message);

    if (rc == CORE_OK) {
        /* whatever was accepted must be JSON */
        char perr[256];
        yajl_val v;
        copy = malloc(out_len + 1);
        assert_non_null(copy);
        memcpy(copy, out, out_len);
        copy[out_len] = '\0';
        v = yajl_tree_parse(copy, perr, sizeof(perr));
        free(copy);
        if (v == NULL) {
            fail_msg("%s: accepted output does not parse: %s", sf->name, perr);
        }
        yajl_tree_free(v);
    }

    if (kind == 'n') {
        if (rc == CORE_OK) {
            fail_msg("%s: must be rejected (invalid_json), but accepted: "
                     "%.*s",
                     sf->name, (int)(out_len > 300 ? 300 : out_len), out);
        }
        if (rej.code != CORE_REJECT_INVALID_JSON &&
            rej.code != CORE_REJECT_TOO_DEEP) {
            fail_msg("%s: must be invalid_json or too_deep, not %s: %s",
                     sf->name, core_reject_name(rej.code), rej.message);
        }
    } else if (kind == 'y') {
        char perr[256];
        yajl_val v;
        int dup;
        copy = malloc(len + 1);
        assert_non_null(copy);
        memcpy(copy, res.data, len);
        copy[len] = '\0';
        v = yajl_tree_parse(copy, perr, sizeof(perr));
        free(copy);
        dup = v != NULL && has_duplicate_key(v);
        yajl_tree_free(v);
        if (dup) {
            if (rc != CORE_ERR_REJECT ||
                rej.code != CORE_REJECT_DUPLICATE_KEY) {
                fail_msg("%s: holds a duplicate key, must be duplicate_key",
                         sf->name);
            }
        } else if (rc == CORE_ERR_REJECT &&
                   rej.code == CORE_REJECT_INVALID_KEY &&
                   strstr(rej.message, "\\u0000") != NULL &&
                   holds_nul_escape(res.data, len)) {
            /* a key holding U+0000: refused by design */
        } else if (rc != CORE_OK) {
            fail_msg("%s: must be accepted, but %s %s: %s", sf->name,
                     core_reject_name(rej.code), rej.path, rej.message);
        }
    }

    file_res_release();
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(((const struct suite_file *)a)->name,
                  ((const struct suite_file *)b)->name);
}

static size_t nfiles_by_prefix[3];

/* The copy of the suite is whole: every kind of file is there. */
static void test_jsontestsuite__folder_has_every_kind(void **state)
{
    (void)state;
    for (size_t k = 0; k < 3; k++) {
        if (nfiles_by_prefix[k] == 0) {
            fail_msg("no %s files in %s", prefixes[k], suite_dir());
        }
    }
}

static void print_counts(const char *label, const struct counts *c)
{
    printf("%s files: %u accepted, %u invalid_json, %u too_deep, "
           "%u duplicate_key, %u other\n",
           label, c->accepted, c->invalid_json, c->too_deep, c->duplicate_key,
           c->other);
}

int main(void)
{
    const struct CMUnitTest checks[] = {
        cmocka_unit_test(test_jsontestsuite__folder_has_every_kind),
    };
    const char *dir = suite_dir();
    DIR *d = opendir(dir);
    struct dirent *e;
    struct suite_file *files = NULL;
    struct CMUnitTest *tests;
    size_t n = 0, cap = 0;
    int failed;

    if (d == NULL) {
        fprintf(stderr,
                "test_jsontestsuite: cannot open '%s' (run from the "
                "repository root or set USERPIPE_JSONTESTSUITE)\n",
                dir);
        return 1;
    }
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        int known = 0;
        for (size_t k = 0; k < 3; k++) {
            known |= strncmp(e->d_name, prefixes[k], 2) == 0;
        }
        for (size_t k = 0; k < 3; k++) {
            if (strncmp(e->d_name, prefixes[k], 2) == 0) {
                nfiles_by_prefix[k]++;
            }
        }
        if (!known || len < 6 || strcmp(e->d_name + len - 5, ".json") != 0) {
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 256;
            files = realloc(files, cap * sizeof(*files));
            if (files == NULL) {
                abort();
            }
        }
        files[n].name = strdup(e->d_name);
        if (files[n].name == NULL) {
            abort();
        }
        n++;
    }
    closedir(d);
    if (n == 0) {
        fprintf(stderr, "test_jsontestsuite: no test files in '%s'\n", dir);
        return 1;
    }
    qsort(files, n, sizeof(*files), cmp_name);
    tests = calloc(n, sizeof(*tests));
    if (tests == NULL) {
        abort();
    }
    for (size_t i = 0; i < n; i++) {
        tests[i].name = files[i].name;
        tests[i].test_func = run_file;
        tests[i].initial_state = &files[i];
    }
    failed =
        cmocka_run_group_tests_name("jsontestsuite_folder", checks, NULL, NULL);
    /* one test per file: the group is built at run time, so its size is
     * passed to the function behind cmocka_run_group_tests_name */
    failed += _cmocka_run_group_tests("jsontestsuite", tests, n, NULL, NULL);

    file_res_release();
    print_counts("y_", &counts_y);
    print_counts("n_", &counts_n);
    print_counts("i_", &counts_i);
    for (size_t i = 0; i < n; i++) {
        free(files[i].name);
    }
    free(files);
    free(tests);
    return failed == 0 ? 0 : 1;
}

/*
 * test_schema.c: tests of schemas/schema.c (the key -> type map) and
 * schemas/schema_file.c (the seed file), through schemas/schema.h.
 *
 * Files are written under a temporary folder made per run and removed at
 * the end; nothing outside it is touched.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../schemas/schema.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[64];

static int make_tmpdir(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/userpipe-test-schema-XXXXXX");
    return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int remove_tmpdir(void **state)
{
    char cmd[128];

    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static void tmp_path(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", tmpdir, name);
}

static void write_text(const char *path, const char *text, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *p = malloc(1 << 20);
    size_t n;

    assert_non_null(f);
    assert_non_null(p);
    n = fread(p, 1, (1 << 20) - 1, f);
    p[n] = '\0';
    fclose(f);
    return p;
}

static enum schema_type get(const struct schema *sch, const char *key)
{
    size_t len = strlen(key);
    return schema_get(sch, key, len, core_hash64(key, len));
}

static enum schema_type put(struct schema *sch, const char *key,
                            enum schema_type t)
{
    size_t len = strlen(key);
    return schema_put(sch, key, len, core_hash64(key, len), t);
}

/* ---- the map ------------------------------------------------------------ */

static void test_schema_new__is_empty(void **state)
{
    struct schema *sch = schema_new();

    (void)state;
    assert_non_null(sch);
    assert_int_equal(schema_count(sch), 0);
    assert_int_equal(get(sch, "phone"), SCHEMA_TYPE_NONE);
    assert_int_equal(get(sch, ""), SCHEMA_TYPE_NONE);
    schema_destroy(sch);
}

static void test_schema_destroy__accepts_null(void **state)
{
    (void)state;
    schema_destroy(NULL);
}

static void test_schema_put__then_get(void **state)
{
    struct schema *sch = schema_new();

    (void)state;
    assert_int_equal(put(sch, "phone", SCHEMA_TYPE_STRING), SCHEMA_TYPE_STRING);
    assert_int_equal(put(sch, "age", SCHEMA_TYPE_NUMBER), SCHEMA_TYPE_NUMBER);
    assert_int_equal(put(sch, "ok", SCHEMA_TYPE_BOOLEAN), SCHEMA_TYPE_BOOLEAN);
    assert_int_equal(put(sch, "o", SCHEMA_TYPE_OBJECT), SCHEMA_TYPE_OBJECT);
    assert_int_equal(put(sch, "a", SCHEMA_TYPE_ARRAY), SCHEMA_TYPE_ARRAY);
    assert_int_equal(schema_count(sch), 5);
    assert_int_equal(get(sch, "phone"), SCHEMA_TYPE_STRING);
    assert_int_equal(get(sch, "age"), SCHEMA_TYPE_NUMBER);
    assert_int_equal(get(sch, "ok"), SCHEMA_TYPE_BOOLEAN);
    assert_int_equal(get(sch, "o"), SCHEMA_TYPE_OBJECT);
    assert_int_equal(get(sch, "a"), SCHEMA_TYPE_ARRAY);
    assert_int_equal(get(sch, "phon"), SCHEMA_TYPE_NONE);
    assert_int_equal(get(sch, "phonee"), SCHEMA_TYPE_NONE);
    assert_int_equal(get(sch, "Phone"), SCHEMA_TYPE_NONE);
    schema_destroy(sch);
}

static void test_schema_put__first_type_wins(void **state)
{
    struct schema *sch = schema_new();

    (void)state;
    assert_int_equal(put(sch, "phone", SCHEMA_TYPE_STRING), SCHEMA_TYPE_STRING);
    assert_int_equal(put(sch, "phone", SCHEMA_TYPE_NUMBER), SCHEMA_TYPE_STRING);
    assert_int_equal(put(sch, "phone", SCHEMA_TYPE_STRING), SCHEMA_TYPE_STRING);
    assert_int_equal(get(sch, "phone"), SCHEMA_TYPE_STRING);
    assert_int_equal(schema_count(sch), 1);
    schema_destroy(sch);
}

/* Keys are (pointer, length): not NUL-terminated, may hold any byte, and
 * are copied. */
static void test_schema_put__keys_are_bytes_and_copied(void **state)
{
    struct schema *sch = schema_new();
    char key[16];
    static const char nul_key[] = {'a', '\0', 'b'};
    const char *k;
    size_t len;
    enum schema_type t;

    (void)state;
    memcpy(key, "phoneXYZ", 8);
    assert_int_equal(
        schema_put(sch, key, 5, core_hash64(key, 5), SCHEMA_TYPE_STRING),
        SCHEMA_TYPE_STRING);
    memset(key, '#', sizeof(key));
    assert_int_equal(get(sch, "phone"), SCHEMA_TYPE_STRING);
    assert_int_equal(schema_put(sch, nul_key, 3, core_hash64(nul_key, 3),
                                SCHEMA_TYPE_NUMBER),
                     SCHEMA_TYPE_NUMBER);
    assert_int_equal(get(sch, "a"), SCHEMA_TYPE_NONE);
    assert_int_equal(schema_get(sch, nul_key, 3, core_hash64(nul_key, 3)),
                     SCHEMA_TYPE_NUMBER);
    assert_int_equal(put(sch, "", SCHEMA_TYPE_BOOLEAN), SCHEMA_TYPE_BOOLEAN);
    assert_int_equal(get(sch, ""), SCHEMA_TYPE_BOOLEAN);
    assert_int_equal(put(sch, "é.日本", SCHEMA_TYPE_ARRAY), SCHEMA_TYPE_ARRAY);
    assert_int_equal(get(sch, "é.日本"), SCHEMA_TYPE_ARRAY);
    schema_entry(sch, 0, &k, &len, &t);
    assert_int_equal(len, 5);
    assert_memory_equal(k, "phone", 5);
    schema_destroy(sch);
}

/* Keys that differ only in their tail bytes (the hash reads the last 1 to 7
 * bytes as one word) stay apart. */
static void test_schema_put__keys_one_byte_apart_are_apart(void **state)
{
    struct schema *sch = schema_new();
    char key[32];

    (void)state;
    for (size_t len = 1; len <= 20; len++) {
        for (size_t pos = 0; pos < len; pos++) {
            memset(key, 'a', len);
            key[pos] = 'b';
            assert_int_equal(schema_put(sch, key, len, core_hash64(key, len),
                                        SCHEMA_TYPE_NUMBER),
                             SCHEMA_TYPE_NUMBER);
        }
        memset(key, 'a', len);
        assert_int_equal(schema_put(sch, key, len, core_hash64(key, len),
                                    SCHEMA_TYPE_STRING),
                         SCHEMA_TYPE_STRING);
    }
    /* 20 all-'a' keys plus sum(1..20) one-'b' keys: all distinct */
    assert_int_equal(schema_count(sch), 20 + 210);
    for (size_t len = 1; len <= 20; len++) {
        memset(key, 'a', len);
        assert_int_equal(schema_get(sch, key, len, core_hash64(key, len)),
                         SCHEMA_TYPE_STRING);
    }
    assert_int_equal(core_hash64("abc", 3), core_hash64("abc", 3));
    assert_true(core_hash64("abc", 3) != core_hash64("abd", 3));
    assert_true(core_hash64("", 0) != core_hash64("a", 1));
    schema_destroy(sch);
}

#define MANY 50000

static void many_key(char *buf, size_t size, size_t i)
{
    /* varied lengths and shapes, like real metadata keys and paths */
    switch (i % 4) {
    case 0:
        snprintf(buf, size, "k%zu", i);
        break;
    case 1:
        snprintf(buf, size, "additional_info.field_%zu", i);
        break;
    case 2:
        snprintf(buf, size, "items[].n%zu", i);
        break;
    default:
        snprintf(buf, size, "%zu_%zu_x", i * 7919, i);
    }
}

static void test_schema_put__fifty_thousand_keys(void **state)
{
    struct schema *sch = schema_new();
    char key[64];

    (void)state;
    for (size_t i = 0; i < MANY; i++) {
        many_key(key, sizeof(key), i);
        assert_int_equal(put(sch, key, (enum schema_type)(1 + i % 5)),
                         (enum schema_type)(1 + i % 5));
    }
    assert_int_equal(schema_count(sch), MANY);
    for (size_t i = 0; i < MANY; i++) {
        many_key(key, sizeof(key), i);
        if (get(sch, key) != (enum schema_type)(1 + i % 5)) {
            fail_msg("key %s: type %d, expected %d", key, get(sch, key),
                     (int)(1 + i % 5));
        }
        /* first wins, even now */
        assert_int_equal(put(sch, key, (enum schema_type)(1 + (i + 1) % 5)),
                         (enum schema_type)(1 + i % 5));
    }
    assert_int_equal(schema_count(sch), MANY);
    for (size_t i = 0; i < 1000; i++) {
        snprintf(key, sizeof(key), "absent_%zu", i);
        assert_int_equal(get(sch, key), SCHEMA_TYPE_NONE);
    }
    /* in insertion order */
    for (size_t i = 0; i < MANY; i += 997) {
        const char *k;
        size_t len;
        enum schema_type t;
        many_key(key, sizeof(key), i);
        schema_entry(sch, i, &k, &len, &t);
        assert_int_equal(len, strlen(key));
        assert_memory_equal(k, key, len);
        assert_int_equal(t, (enum schema_type)(1 + i % 5));
    }
    schema_destroy(sch);
}

static void test_schema_entry__insertion_order(void **state)
{
    struct schema *sch = schema_new();
    static const char *const keys[] = {"zeta", "alpha", "mid",
                                       "b",    "a.b",   "items[].x"};
    const char *k;
    size_t len;
    enum schema_type t;

    (void)state;
    for (size_t i = 0; i < 6; i++) {
        put(sch, keys[i], (enum schema_type)(1 + i % 5));
    }
    put(sch, "alpha", SCHEMA_TYPE_ARRAY); /* no move, no change */
    assert_int_equal(schema_count(sch), 6);
    for (size_t i = 0; i < 6; i++) {
        schema_entry(sch, i, &k, &len, &t);
        assert_int_equal(len, strlen(keys[i]));
        assert_memory_equal(k, keys[i], len);
        assert_int_equal(t, (enum schema_type)(1 + i % 5));
    }
    schema_destroy(sch);
}

static void test_schema_clear__forgets_everything(void **state)
{
    struct schema *sch = schema_new();
    char key[32];

    (void)state;
    schema_clear(sch); /* empty: fine */
    put(sch, "phone", SCHEMA_TYPE_STRING);
    put(sch, "age", SCHEMA_TYPE_NUMBER);
    schema_clear(sch);
    assert_int_equal(schema_count(sch), 0);
    assert_int_equal(get(sch, "phone"), SCHEMA_TYPE_NONE);
    assert_int_equal(get(sch, "age"), SCHEMA_TYPE_NONE);
    /* the key may take another type now */
    assert_int_equal(put(sch, "phone", SCHEMA_TYPE_NUMBER), SCHEMA_TYPE_NUMBER);
    assert_int_equal(schema_count(sch), 1);

    /* a large table, cleared, then used again */
    for (size_t i = 0; i < 5000; i++) {
        snprintf(key, sizeof(key), "key%zu", i);
        put(sch, key, SCHEMA_TYPE_BOOLEAN);
    }
    schema_clear(sch);
    assert_int_equal(schema_count(sch), 0);
    for (size_t i = 0; i < 5000; i++) {
        snprintf(key, sizeof(key), "key%zu", i);
        assert_int_equal(get(sch, key), SCHEMA_TYPE_NONE);
    }
    for (size_t i = 0; i < 100; i++) {
        snprintf(key, sizeof(key), "key%zu", i);
        assert_int_equal(put(sch, key, SCHEMA_TYPE_OBJECT), SCHEMA_TYPE_OBJECT);
    }
    assert_int_equal(schema_count(sch), 100);
    assert_int_equal(get(sch, "key99"), SCHEMA_TYPE_OBJECT);
    {
        const char *k;
        size_t len;
        enum schema_type t;
        schema_entry(sch, 0, &k, &len, &t);
        assert_int_equal(len, 4);
        assert_memory_equal(k, "key0", 4);
        assert_int_equal(t, SCHEMA_TYPE_OBJECT);
    }
    schema_destroy(sch);
}

static void test_schema_type_name__and_parse(void **state)
{
    static const char *const names[] = {"string", "number", "boolean", "object",
                                        "array"};

    (void)state;
    for (int t = SCHEMA_TYPE_STRING; t <= SCHEMA_TYPE_ARRAY; t++) {
        const char *n = schema_type_name((enum schema_type)t);
        assert_string_equal(n, names[t - 1]);
        assert_int_equal(schema_type_parse(n, strlen(n)), t);
    }
    assert_string_equal(schema_type_name(SCHEMA_TYPE_NONE), "null");
    assert_int_equal(schema_type_parse("null", 4), SCHEMA_TYPE_NONE);
    assert_int_equal(schema_type_parse("String", 6), SCHEMA_TYPE_NONE);
    assert_int_equal(schema_type_parse("str", 3), SCHEMA_TYPE_NONE);
    assert_int_equal(schema_type_parse("strings", 7), SCHEMA_TYPE_NONE);
    assert_int_equal(schema_type_parse("", 0), SCHEMA_TYPE_NONE);
    assert_int_equal(schema_type_parse("integer", 7), SCHEMA_TYPE_NONE);
    assert_int_equal(schema_type_parse("numberX", 6), SCHEMA_TYPE_NUMBER);
}

/* ---- the seed file --------------------------------------------------- */

static void test_schema_save_file__load_round_trip(void **state)
{
    struct schema *sch = schema_new(), *back = schema_new();
    char path[128], errstr[512];
    char key[64];

    (void)state;
    tmp_path(path, sizeof(path), "round.json");
    put(sch, "phone", SCHEMA_TYPE_STRING);
    put(sch, "age", SCHEMA_TYPE_NUMBER);
    put(sch, "vip", SCHEMA_TYPE_BOOLEAN);
    put(sch, "address", SCHEMA_TYPE_OBJECT);
    put(sch, "tags", SCHEMA_TYPE_ARRAY);
    put(sch, "items[].name", SCHEMA_TYPE_STRING);
    put(sch, "q\"uo\\te/\t\x01", SCHEMA_TYPE_NUMBER);
    put(sch, "é日本😀", SCHEMA_TYPE_STRING);
    put(sch, "", SCHEMA_TYPE_OBJECT);
    for (size_t i = 0; i < 3000; i++) {
        many_key(key, sizeof(key), i);
        put(sch, key, (enum schema_type)(1 + i % 5));
    }
    assert_int_equal(schema_save_file(sch, path, errstr, sizeof(errstr)),
                     CORE_OK);
    assert_int_equal(access(path, F_OK), 0);
    {
        char tmp[160];
        snprintf(tmp, sizeof(tmp), "%s.tmp", path);
        assert_int_not_equal(access(tmp, F_OK), 0); /* renamed away */
    }
    if (schema_load_file(back, path, errstr, sizeof(errstr)) != CORE_OK) {
        fail_msg("loading what was saved: %s", errstr);
    }
    assert_int_equal(schema_count(back), schema_count(sch));
    for (size_t i = 0; i < schema_count(sch); i++) {
        const char *k1, *k2;
        size_t l1, l2;
        enum schema_type t1, t2;
        schema_entry(sch, i, &k1, &l1, &t1);
        schema_entry(back, i, &k2, &l2, &t2);
        assert_int_equal(l1, l2);
        assert_memory_equal(k1, k2, l1);
        assert_int_equal(t1, t2);
    }
    schema_destroy(sch);
    schema_destroy(back);
}

static void test_schema_save_file__format(void **state)
{
    struct schema *sch = schema_new();
    char path[128], errstr[512];
    char *text;

    (void)state;
    tmp_path(path, sizeof(path), "format.json");
    assert_int_equal(schema_save_file(sch, path, errstr, sizeof(errstr)),
                     CORE_OK);
    text = read_text(path);
    assert_string_equal(text, "{}\n");
    free(text);
    put(sch, "phone", SCHEMA_TYPE_STRING);
    put(sch, "a_b", SCHEMA_TYPE_NUMBER);
    assert_int_equal(schema_save_file(sch, path, errstr, sizeof(errstr)),
                     CORE_OK);
    text = read_text(path);
    assert_string_equal(text, "{\"phone\":\"string\",\"a_b\":\"number\"}\n");
    free(text);
    schema_destroy(sch);
}

static void test_schema_save_file__unwritable_is_io(void **state)
{
    struct schema *sch = schema_new();
    char errstr[512] = "";

    (void)state;
    put(sch, "phone", SCHEMA_TYPE_STRING);
    assert_int_equal(schema_save_file(sch, "/nonexistent-dir/x/schema.json",
                                      errstr, sizeof(errstr)),
                     CORE_ERR_IO);
    assert_non_null(strstr(errstr, "/nonexistent-dir/x/schema.json"));
    schema_destroy(sch);
}

static void test_schema_load_file__seed_into_schema(void **state)
{
    struct schema *sch = schema_new();
    char path[128], errstr[512];
    static const char seed[] =
        "{ \"phone\" : \"string\",\n \"age\":\"number\", \"vip\":\"boolean\","
        "\"address\":\"object\",\"tags\":\"array\",\"a\\u002eb\":\"string\","
        "\"x.phone\":\"number\"}\n";

    (void)state;
    tmp_path(path, sizeof(path), "seed.json");
    write_text(path, seed, sizeof(seed) - 1);
    put(sch, "before", SCHEMA_TYPE_ARRAY);
    if (schema_load_file(sch, path, errstr, sizeof(errstr)) != CORE_OK) {
        fail_msg("seed: %s", errstr);
    }
    assert_int_equal(schema_count(sch), 8);
    assert_int_equal(get(sch, "before"), SCHEMA_TYPE_ARRAY);
    assert_int_equal(get(sch, "phone"), SCHEMA_TYPE_STRING);
    assert_int_equal(get(sch, "age"), SCHEMA_TYPE_NUMBER);
    assert_int_equal(get(sch, "vip"), SCHEMA_TYPE_BOOLEAN);
    assert_int_equal(get(sch, "address"), SCHEMA_TYPE_OBJECT);
    assert_int_equal(get(sch, "tags"), SCHEMA_TYPE_ARRAY);
    assert_int_equal(get(sch, "a.b"), SCHEMA_TYPE_STRING);
    assert_int_equal(get(sch, "x.phone"), SCHEMA_TYPE_NUMBER);
    schema_destroy(sch);
}

static void test_schema_load_file__empty_object(void **state)
{
    struct schema *sch = schema_new();
    char path[128], errstr[512];

    (void)state;
    tmp_path(path, sizeof(path), "empty.json");
    write_text(path, "{}", 2);
    assert_int_equal(schema_load_file(sch, path, errstr, sizeof(errstr)),
                     CORE_OK);
    assert_int_equal(schema_count(sch), 0);
    schema_destroy(sch);
}

/* An entry that agrees with what is known is fine; one that disagrees,
 * in the file itself or with the schema, is an error. */
static void test_schema_load_file__same_type_twice_ok(void **state)
{
    struct schema *sch = schema_new();
    char path[128], errstr[512];
    static const char seed[] = "{\"phone\":\"string\",\"phone\":\"string\"}";

    (void)state;
    tmp_path(path, sizeof(path), "same.json");
    write_text(path, seed, sizeof(seed) - 1);
    put(sch, "phone", SCHEMA_TYPE_STRING);
    if (schema_load_file(sch, path, errstr, sizeof(errstr)) != CORE_OK) {
        fail_msg("seed: %s", errstr);
    }
    assert_int_equal(schema_count(sch), 1);
    schema_destroy(sch);
}

/* A sentence: non-empty, one line, naming the file. */
static void expect_usage_error(const char *name, const char *text, size_t len,
                               const char *word)
{
    struct schema *sch = schema_new();
    char path[128], errstr[512] = "";
    enum core_err rc;

    if (len == (size_t)-1) {
        len = strlen(text);
    }
    tmp_path(path, sizeof(path), name);
    write_text(path, text, len);
    rc = schema_load_file(sch, path, errstr, sizeof(errstr));
    if (rc != CORE_ERR_USAGE) {
        fail_msg("%s: rc %d, expected CORE_ERR_USAGE (%s)", name, rc, errstr);
    }
    if (strlen(errstr) < 20 || strchr(errstr, '\n') != NULL) {
        fail_msg("%s: not a sentence: \"%s\"", name, errstr);
    }
    if (strstr(errstr, path) == NULL) {
        fail_msg("%s: errstr does not name the file: \"%s\"", name, errstr);
    }
    if (word != NULL && strstr(errstr, word) == NULL) {
        fail_msg("%s: errstr does not mention \"%s\": \"%s\"", name, word,
                 errstr);
    }
    schema_destroy(sch);
}

static void test_schema_load_file__not_json(void **state)
{
    (void)state;
    expect_usage_error("notjson.json", "phone: string\n", (size_t)-1, "JSON");
    expect_usage_error("truncated.json", "{\"phone\":\"string\"", (size_t)-1,
                       "JSON");
    expect_usage_error("emptyfile.json", "", (size_t)-1, NULL);
    expect_usage_error("trailing.json", "{} {}", (size_t)-1, NULL);
    expect_usage_error("nul.json", "{\"a\":\"string\"}\0", 15, NULL);
    /* issue 20: a key holding U+0000 would seed its prefix */
    expect_usage_error("nulkey.json", "{\"a\\u0000b\":\"number\"}", (size_t)-1,
                       "U+0000");
}

/* An escaped backslash before u0000 is no NUL: the key is a\u0000b. */
static void test_schema_load_file__escaped_backslash_is_no_nul(void **state)
{
    struct schema *sch = schema_new();
    char path[] = "/tmp/userpipe-test-schema-XXXXXX";
    char errstr[256];
    int fd = mkstemp(path);
    static const char text[] = "{\"a\\\\u0000b\":\"number\"}";

    (void)state;
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, sizeof(text) - 1), sizeof(text) - 1);
    close(fd);
    assert_int_equal(schema_load_file(sch, path, errstr, sizeof(errstr)),
                     CORE_OK);
    assert_int_equal(schema_count(sch), 1);
    assert_int_equal(
        schema_get(sch, "a\\u0000b", 8, core_hash64("a\\u0000b", 8)),
        SCHEMA_TYPE_NUMBER);
    unlink(path);
    schema_destroy(sch);
}

static void test_schema_load_file__not_an_object(void **state)
{
    (void)state;
    expect_usage_error("array.json", "[\"phone\",\"string\"]", (size_t)-1,
                       "object");
    expect_usage_error("string.json", "\"phone\"", (size_t)-1, "object");
    expect_usage_error("number.json", "42", (size_t)-1, "object");
    expect_usage_error("null.json", "null", (size_t)-1, "object");
}

static void test_schema_load_file__bad_type_name(void **state)
{
    (void)state;
    expect_usage_error("badtype.json", "{\"phone\":\"str\"}", (size_t)-1,
                       "phone");
    expect_usage_error("nulltype.json", "{\"phone\":\"null\"}", (size_t)-1,
                       "phone");
    expect_usage_error("upper.json", "{\"phone\":\"String\"}", (size_t)-1,
                       "phone");
    expect_usage_error("notstring.json", "{\"phone\":1}", (size_t)-1, "phone");
    expect_usage_error("objtype.json", "{\"phone\":{\"type\":\"string\"}}",
                       (size_t)-1, "phone");
    expect_usage_error("latebad.json",
                       "{\"a\":\"string\",\"b\":\"number\",\"c\":\"integer\"}",
                       (size_t)-1, "\"c\"");
}

static void test_schema_load_file__conflicting_duplicate(void **state)
{
    (void)state;
    expect_usage_error("conflict.json",
                       "{\"phone\":\"string\",\"age\":\"number\","
                       "\"phone\":\"number\"}",
                       (size_t)-1, "phone");
}

static void test_schema_load_file__conflict_with_known(void **state)
{
    struct schema *sch = schema_new();
    char path[128], errstr[512] = "";
    static const char seed[] = "{\"phone\":\"number\"}";

    (void)state;
    tmp_path(path, sizeof(path), "known.json");
    write_text(path, seed, sizeof(seed) - 1);
    put(sch, "phone", SCHEMA_TYPE_STRING);
    assert_int_equal(schema_load_file(sch, path, errstr, sizeof(errstr)),
                     CORE_ERR_USAGE);
    assert_non_null(strstr(errstr, "phone"));
    assert_int_equal(get(sch, "phone"), SCHEMA_TYPE_STRING);
    schema_destroy(sch);
}

static void test_schema_load_file__missing_is_io(void **state)
{
    struct schema *sch = schema_new();
    char path[128], errstr[512] = "";

    (void)state;
    tmp_path(path, sizeof(path), "does-not-exist.json");
    assert_int_equal(schema_load_file(sch, path, errstr, sizeof(errstr)),
                     CORE_ERR_IO);
    assert_non_null(strstr(errstr, path));
    assert_true(strlen(errstr) > 20);
    assert_int_equal(schema_count(sch), 0);
    schema_destroy(sch);
}

static void test_schema_load_file__directory_is_io(void **state)
{
    struct schema *sch = schema_new();
    char errstr[512] = "";

    (void)state;
    assert_int_equal(schema_load_file(sch, tmpdir, errstr, sizeof(errstr)),
                     CORE_ERR_IO);
    assert_true(strlen(errstr) > 0);
    schema_destroy(sch);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schema_new__is_empty),
        cmocka_unit_test(test_schema_destroy__accepts_null),
        cmocka_unit_test(test_schema_put__then_get),
        cmocka_unit_test(test_schema_put__first_type_wins),
        cmocka_unit_test(test_schema_put__keys_are_bytes_and_copied),
        cmocka_unit_test(test_schema_put__keys_one_byte_apart_are_apart),
        cmocka_unit_test(test_schema_put__fifty_thousand_keys),
        cmocka_unit_test(test_schema_entry__insertion_order),
        cmocka_unit_test(test_schema_clear__forgets_everything),
        cmocka_unit_test(test_schema_type_name__and_parse),
        cmocka_unit_test(test_schema_save_file__load_round_trip),
        cmocka_unit_test(test_schema_save_file__format),
        cmocka_unit_test(test_schema_save_file__unwritable_is_io),
        cmocka_unit_test(test_schema_load_file__seed_into_schema),
        cmocka_unit_test(test_schema_load_file__empty_object),
        cmocka_unit_test(test_schema_load_file__same_type_twice_ok),
        cmocka_unit_test(test_schema_load_file__not_json),
        cmocka_unit_test(test_schema_load_file__escaped_backslash_is_no_nul),
        cmocka_unit_test(test_schema_load_file__not_an_object),
        cmocka_unit_test(test_schema_load_file__bad_type_name),
        cmocka_unit_test(test_schema_load_file__conflicting_duplicate),
        cmocka_unit_test(test_schema_load_file__conflict_with_known),
        cmocka_unit_test(test_schema_load_file__missing_is_io),
        cmocka_unit_test(test_schema_load_file__directory_is_io),
    };

    return cmocka_run_group_tests_name("schema", tests, make_tmpdir,
                                       remove_tmpdir);
}

/*
 * schema_file.c: the seed file, a JSON object mapping metadata key (or
 * path, with the path scope) to type name: {"phone":"string","age":"number"}.
 *
 * Seeds carry the types Moesif already holds, so they are loaded before
 * anything is learned.  A seed file is small, trusted configuration, so it
 * is read whole (capped at SCHEMA_FILE_MAX_BYTES) and parsed with yajl's
 * tree API; events never go through here.
 */
#include "schema.h"
#include "schemas_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

/* Whether text holds the JSON escape \u0000 (its backslash not itself
 * escaped). */
static int holds_nul_escape(const char *text)
{
    for (const char *p = strstr(text, "\\u0000"); p != NULL;
         p = strstr(p + 1, "\\u0000")) {
        const char *q = p;
        while (q > text && q[-1] == '\\') {
            q--;
        }
        if ((p - q) % 2 == 0) {
            return 1;
        }
    }
    return 0;
}

static enum core_err read_whole(const char *path, char **out, size_t *out_len,
                                char *errstr, size_t errstr_size)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t len = 0, cap = 0;
    enum core_err rc = CORE_OK;

    if (f == NULL) {
        snprintf(errstr, errstr_size, "cannot open schema file '%s': %s", path,
                 strerror(errno));
        return CORE_ERR_IO;
    }
    for (;;) {
        size_t n;
        if (len + 65536 + 1 > cap) {
            cap = cap ? cap * 2 : 65536 * 2;
            buf = core_realloc(buf, cap);
        }
        n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
        if (len > SCHEMA_FILE_MAX_BYTES) {
            snprintf(errstr, errstr_size,
                     "schema file '%s' is larger than %u bytes: split it or "
                     "check it is the right file",
                     path, SCHEMA_FILE_MAX_BYTES);
            rc = CORE_ERR_USAGE;
            goto out;
        }
        if (n == 0) {
            break;
        }
    }
    if (ferror(f)) {
        snprintf(errstr, errstr_size, "cannot read schema file '%s': %s", path,
                 strerror(errno));
        rc = CORE_ERR_IO;
        goto out;
    }
    buf[len] = '\0';
    *out = buf;
    *out_len = len;
    buf = NULL;
out:
    free(buf);
    fclose(f);
    return rc;
}

enum core_err schema_load_file(struct schema *sch, const char *path,
                               char *errstr, size_t errstr_size)
{
    char *text = NULL;
    size_t len = 0;
    char perr[256];
    yajl_val root = NULL;
    enum core_err rc;

    rc = read_whole(path, &text, &len, errstr, errstr_size);
    if (rc != CORE_OK) {
        return rc;
    }
    if (strlen(text) != len) {
        snprintf(errstr, errstr_size,
                 "schema file '%s' holds a NUL byte: it must be a JSON "
                 "object of key to type name",
                 path);
        rc = CORE_ERR_USAGE;
        goto out;
    }
    if (holds_nul_escape(text)) {
        /* the tree's keys are C strings: "a\u0000b" would seed "a" */
        snprintf(errstr, errstr_size,
                 "schema file '%s' holds \\u0000: no key may hold U+0000 "
                 "(events with one are rejected as invalid_key)",
                 path);
        rc = CORE_ERR_USAGE;
        goto out;
    }
    root = yajl_tree_parse(text, perr, sizeof(perr));
    if (root == NULL) {
        /* yajl's message spans lines; keep the first */
        perr[strcspn(perr, "\n")] = '\0';
        snprintf(errstr, errstr_size, "schema file '%s' is not valid JSON: %s",
                 path, perr);
        rc = CORE_ERR_USAGE;
        goto out;
    }
    if (!YAJL_IS_OBJECT(root)) {
        snprintf(errstr, errstr_size,
                 "schema file '%s' must be a JSON object mapping key to type "
                 "name, like {\"phone\":\"string\"}",
                 path);
        rc = CORE_ERR_USAGE;
        goto out;
    }
    for (size_t i = 0; i < root->u.object.len; i++) {
        const char *key = root->u.object.keys[i];
        yajl_val v = root->u.object.values[i];
        size_t klen = strlen(key);
        enum schema_type t = SCHEMA_TYPE_NONE, had;

        if (YAJL_IS_STRING(v)) {
            t = schema_type_parse(v->u.string, strlen(v->u.string));
        }
        if (t == SCHEMA_TYPE_NONE) {
            snprintf(errstr, errstr_size,
                     "schema file '%s': key \"%.200s\" must map to one of "
                     "\"string\", \"number\", \"boolean\", \"object\", "
                     "\"array\"",
                     path, key);
            rc = CORE_ERR_USAGE;
            goto out;
        }
        had = schema_put(sch, key, klen, core_hash64(key, klen), t);
        if (had != t) {
            snprintf(errstr, errstr_size,
                     "schema file '%s': key \"%.200s\" is %s there but "
                     "already %s: remove one of the two",
                     path, key, schema_type_name(t), schema_type_name(had));
            rc = CORE_ERR_USAGE;
            goto out;
        }
    }
out:
    yajl_tree_free(root);
    free(text);
    return rc;
}

static void print_to_file(void *ctx, const char *str, size_t len)
{
    fwrite(str, 1, len, ctx);
}

void schema_write(const struct schema *sch, FILE *f)
{
    yajl_gen g = yajl_gen_alloc(NULL);

    yajl_gen_config(g, yajl_gen_print_callback, print_to_file, f);
    yajl_gen_map_open(g);
    for (size_t i = 0; i < schema_count(sch); i++) {
        const char *key;
        size_t len;
        enum schema_type t;
        const char *name;

        schema_entry(sch, i, &key, &len, &t);
        name = schema_type_name(t);
        yajl_gen_string(g, (const unsigned char *)key, len);
        yajl_gen_string(g, (const unsigned char *)name, strlen(name));
    }
    yajl_gen_map_close(g);
    fputc('\n', f);
    yajl_gen_free(g);
}

enum core_err schema_save_file(const struct schema *sch, const char *path,
                               char *errstr, size_t errstr_size)
{
    size_t plen = strlen(path);
    char *tmp = core_malloc(plen + 8);
    FILE *f;
    enum core_err rc = CORE_OK;

    snprintf(tmp, plen + 8, "%s.tmp", path);
    f = fopen(tmp, "wb");
    if (f == NULL) {
        snprintf(errstr, errstr_size, "cannot write schema file '%s': %s", tmp,
                 strerror(errno));
        free(tmp);
        return CORE_ERR_IO;
    }
    schema_write(sch, f);
    if (fflush(f) != 0 || ferror(f)) {
        snprintf(errstr, errstr_size, "cannot write schema file '%s': %s", tmp,
                 strerror(errno));
        rc = CORE_ERR_IO;
    }
    if (fclose(f) != 0 && rc == CORE_OK) {
        snprintf(errstr, errstr_size, "cannot write schema file '%s': %s", tmp,
                 strerror(errno));
        rc = CORE_ERR_IO;
    }
    if (rc == CORE_OK && rename(tmp, path) != 0) {
        snprintf(errstr, errstr_size, "cannot rename '%s' to '%s': %s", tmp,
                 path, strerror(errno));
        rc = CORE_ERR_IO;
    }
    if (rc != CORE_OK) {
        remove(tmp);
    }
    free(tmp);
    return rc;
}

/*
 * alloc.c: allocation wrappers that abort on out-of-memory.
 *
 * Aborting is the policy, not a shortcut: offsets are stored only after an
 * event is delivered, so a crash loses nothing, while a half-handled
 * allocation failure in a streaming path would risk exactly that.
 * core_free_secret lives here too: the one way a secret's memory is freed.
 */
#include "core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static CORE_NORETURN void oom(size_t size)
{
    /* fprintf may itself need memory; keep the message fixed and short */
    fprintf(stderr,
            "level=error component=core msg=\"out of memory\" "
            "bytes=%zu\n",
            size);
    abort();
}

void *core_malloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (p == NULL) {
        oom(size);
    }
    return p;
}

void *core_calloc(size_t nmemb, size_t size)
{
    void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);
    if (p == NULL) {
        oom(nmemb * size);
    }
    return p;
}

void *core_realloc(void *ptr, size_t size)
{
    void *p = realloc(ptr, size ? size : 1);
    if (p == NULL) {
        oom(size);
    }
    return p;
}

char *core_strndup(const char *s, size_t len)
{
    char *p = core_malloc(len + 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

char *core_strdup(const char *s)
{
    return core_strndup(s, strlen(s));
}

void core_free_secret(char *s)
{
    if (s == NULL) {
        return;
    }
    explicit_bzero(s, strlen(s));
    free(s);
}

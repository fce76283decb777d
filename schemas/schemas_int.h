/*
 * schemas_int.h: helpers shared by the files of schemas/ only.
 */
#ifndef SCHEMAS_INT_H
#define SCHEMAS_INT_H

/* Seed files larger than this are refused: a seed is a key -> type map,
 * and 64 MiB holds millions of keys. */
#define SCHEMA_FILE_MAX_BYTES (64u * 1024 * 1024)

#endif

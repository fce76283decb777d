/*
 * version.h: userpipe's version, in this one place.  `userpipe --version`
 * prints it and the sink sends it in every request's User-Agent, so a
 * Moesif support ticket or a proxy log names the build that sent a batch.
 *
 * Invariant: nothing else spells the version; bump USERPIPE_VERSION here
 * (semantic versioning) and both follow.  A header of macros only, so it
 * includes nothing and stays below every stage (core/ is the floor).
 */
#ifndef CORE_VERSION_H
#define CORE_VERSION_H

#define USERPIPE_VERSION "0.1.0"

/* The User-Agent of userpipe's HTTP requests: product/version, the form
 * of RFC 9110 section 10.1.5. */
#define USERPIPE_USER_AGENT "userpipe/" USERPIPE_VERSION

#endif

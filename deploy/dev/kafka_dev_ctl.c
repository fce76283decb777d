/*
 * kafka_dev_ctl.c: the control socket, both ends.  The server's side
 * binds the unix socket (replacing a stale one nobody listens on),
 * accepts up to KD_MAX_CLIENTS connections and hands each complete line to
 * kd_command; `kafka-dev ctl PATH COMMAND...` is the client that sends one
 * line and prints the reply.
 *
 * Why separate: the bytes on the socket are one job, what a command does
 * another (kafka_dev_cmd.c); the client shares the address check.
 *
 * Invariant: every command line gets exactly one reply line; a line
 * longer than KD_LINE_MAX - 1 bytes gets an error and the connection is
 * closed.
 */
#include "kafka_dev.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

/* Writes all of buf; 0 on success. */
static int kd_write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

void kd_client_close(struct kd_client *c)
{
    close(c->fd);
    c->fd = -1;
    c->len = 0;
}

static void kd_client_reply(struct kd_client *c, struct kd_buf *reply)
{
    kd_buf_printf(reply, "\n");
    if (kd_write_all(c->fd, reply->p, reply->len) != 0) {
        kd_client_close(c);
    }
}

/* Reads what a client sent and answers each complete line. */
void kd_client_read(struct kd_server *srv, struct kd_client *c)
{
    ssize_t n = read(c->fd, c->buf + c->len, sizeof(c->buf) - c->len);

    if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
        return;
    }
    if (n <= 0) {
        kd_client_close(c);
        return;
    }
    c->len += (size_t)n;
    for (;;) {
        struct kd_buf reply = {0};
        char *nl = memchr(c->buf, '\n', c->len);
        size_t line_len;
        if (nl == NULL) {
            break;
        }
        line_len = (size_t)(nl - c->buf);
        *nl = '\0';
        kd_command(srv, c->buf, &reply);
        kd_client_reply(c, &reply);
        kd_buf_release(&reply);
        if (c->fd < 0) {
            return;
        }
        c->len -= line_len + 1;
        memmove(c->buf, nl + 1, c->len);
    }
    if (c->fd >= 0 && c->len == sizeof(c->buf)) {
        struct kd_buf reply = {0};
        kd_buf_printf(&reply, "error command longer than %d bytes",
                      KD_LINE_MAX - 1);
        kd_client_reply(c, &reply);
        kd_buf_release(&reply);
        if (c->fd >= 0) {
            kd_client_close(c);
        }
    }
}

void kd_accept(struct kd_server *srv)
{
    int fd = accept(srv->listen_fd, NULL, NULL);
    static const char busy[] = "error too many control connections\n";

    if (fd < 0) {
        return;
    }
    (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
    for (int i = 0; i < KD_MAX_CLIENTS; i++) {
        if (srv->clients[i].fd < 0) {
            srv->clients[i].fd = fd;
            srv->clients[i].len = 0;
            return;
        }
    }
    (void)kd_write_all(fd, busy, sizeof(busy) - 1);
    close(fd);
}

static int kd_unix_addr(const char *path, struct sockaddr_un *addr,
                        char *errstr, size_t errstr_size)
{
    memset(addr, 0, sizeof(*addr));
    addr->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(addr->sun_path)) {
        snprintf(errstr, errstr_size,
                 "control socket path \"%s\" is %zu bytes, longer than the "
                 "%zu a unix socket allows; choose a shorter --control path",
                 path, strlen(path), sizeof(addr->sun_path) - 1);
        return -1;
    }
    memcpy(addr->sun_path, path, strlen(path) + 1);
    return 0;
}

/* Binds the control socket, replacing a stale one nobody listens on. */
int kd_listen_control(struct kd_server *srv, char *errstr, size_t errstr_size)
{
    struct sockaddr_un addr;
    int fd;

    if (kd_unix_addr(srv->control_path, &addr, errstr, errstr_size) != 0) {
        return -1;
    }
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0) {
        snprintf(errstr, errstr_size, "socket: %s", strerror(errno));
        return -1;
    }
    (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
        int probe;
        int alive;
        if (errno != EADDRINUSE) {
            snprintf(errstr, errstr_size,
                     "cannot bind control socket \"%s\": %s", srv->control_path,
                     strerror(errno));
            close(fd);
            return -1;
        }
        /* In use: a live kafka-dev, or a stale file of a killed one. */
        probe = socket(AF_UNIX, SOCK_STREAM, 0);
        alive = probe >= 0 &&
                connect(probe, (struct sockaddr *)&addr, sizeof(addr)) == 0;
        if (probe >= 0) {
            close(probe);
        }
        if (alive) {
            snprintf(errstr, errstr_size,
                     "another process listens on control socket \"%s\"; "
                     "stop it or choose another --control path",
                     srv->control_path);
            close(fd);
            return -1;
        }
        unlink(srv->control_path);
        if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
            snprintf(errstr, errstr_size,
                     "cannot bind control socket \"%s\": %s", srv->control_path,
                     strerror(errno));
            close(fd);
            return -1;
        }
    }
    if (listen(fd, KD_MAX_CLIENTS) != 0) {
        snprintf(errstr, errstr_size,
                 "cannot listen on control socket \"%s\": %s",
                 srv->control_path, strerror(errno));
        close(fd);
        return -1;
    }
    srv->listen_fd = fd;
    return 0;
}

int kd_ctl(int argc, char **argv)
{
    struct sockaddr_un addr;
    struct timeval tv = {KD_CTL_TIMEOUT_S, 0};
    struct kd_buf line = {0};
    char errstr[512];
    char reply[65536];
    size_t got = 0;
    int fd = -1;
    int rc = 2;

    if (argc < 4) {
        fprintf(stderr, "usage: kafka-dev ctl PATH COMMAND [ARG]...\n");
        return 2;
    }
    if (kd_unix_addr(argv[2], &addr, errstr, sizeof(errstr)) != 0) {
        fprintf(stderr, "kafka-dev ctl: %s\n", errstr);
        return 2;
    }
    for (int i = 3; i < argc; i++) {
        kd_buf_printf(&line, "%s%s", i > 3 ? " " : "", argv[i]);
    }
    kd_buf_printf(&line, "\n");
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
        fprintf(stderr,
                "kafka-dev ctl: cannot connect to control socket \"%s\": %s "
                "(is kafka-dev running?)\n",
                argv[2], strerror(errno));
        goto out;
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (kd_write_all(fd, line.p, line.len) != 0) {
        fprintf(stderr, "kafka-dev ctl: cannot send the command: %s\n",
                strerror(errno));
        goto out;
    }
    while (got < sizeof(reply) - 1) {
        ssize_t n = read(fd, reply + got, sizeof(reply) - 1 - got);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        got += (size_t)n;
        if (memchr(reply, '\n', got) != NULL) {
            break;
        }
    }
    reply[got] = '\0';
    if (got == 0 || strchr(reply, '\n') == NULL) {
        fprintf(stderr, "kafka-dev ctl: no reply from \"%s\" within %d s\n",
                argv[2], KD_CTL_TIMEOUT_S);
        goto out;
    }
    if (strncmp(reply, "ok", 2) == 0) {
        fputs(reply, stdout);
        rc = 0;
    } else {
        fputs(reply, stderr);
        rc = 1;
    }
out:
    if (fd >= 0) {
        close(fd);
    }
    kd_buf_release(&line);
    return rc;
}

/* Bounded reads of regular files; see file_read.h. */
#include "file_read.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

engine_status file_read_regular(const char *path, size_t max_bytes, char **data, size_t *len,
                                bool *missing, engine_error *err)
{
    *data = NULL;
    *len = 0;
    if (missing)
        *missing = false;
    /* O_NONBLOCK: opening a FIFO returns at once instead of waiting for a writer */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        if (missing)
            *missing = errno == ENOENT;
        return engine_fail(err, ENGINE_E_IO, "%s: cannot open: %s", path, strerror(errno));
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return engine_fail(err, ENGINE_E_IO, "%s: not a regular file", path);
    }
    if ((unsigned long long)sb.st_size > max_bytes) {
        close(fd);
        return engine_fail(err, ENGINE_E_INVALID, "%s: %lld bytes is more than the limit of %zu",
                           path, (long long)sb.st_size, max_bytes);
    }
    size_t size = (size_t)sb.st_size;
    char *buf = malloc(size + 1);
    if (!buf) {
        close(fd);
        return engine_fail(err, ENGINE_E_NOMEM, "%s: out of memory reading %zu bytes", path, size);
    }
    size_t got = 0;
    while (got < size) {
        ssize_t n = read(fd, buf + got, size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int e = n < 0 ? errno : 0;
            close(fd);
            free(buf);
            return engine_fail(err, ENGINE_E_IO, "%s: short read%s%s", path, e ? ": " : "",
                               e ? strerror(e) : " (the file shrank)");
        }
        got += (size_t)n;
    }
    close(fd);
    buf[size] = 0;
    *data = buf;
    *len = size;
    return ENGINE_OK;
}

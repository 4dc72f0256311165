/* Reading a whole file that must be a regular file of bounded size.
 *
 * Model files, labels, model.json, the algorithm cache and config files
 * come from folders an operator fills; one of them being a FIFO or a
 * device must give an error, not a load that blocks forever (an open(2)
 * of a FIFO waits for a writer). So the file is opened non-blocking,
 * checked to be regular with fstat before anything is read, and its size
 * is bounded before anything is allocated.
 */
#ifndef VISIOND_FILE_READ_H
#define VISIOND_FILE_READ_H

#include <stdbool.h>
#include <stddef.h>

#include "status.h"

/* Reads `path` whole into a malloc'ed buffer, NUL-terminated (the NUL is not
 * counted in *len). Fails with ENGINE_E_IO on a missing, unreadable or
 * non-regular file (*missing says the file does not exist, when not NULL),
 * ENGINE_E_INVALID when it is larger than max_bytes. */
engine_status file_read_regular(const char *path, size_t max_bytes, char **data, size_t *len,
                                bool *missing, engine_error *err);

#endif

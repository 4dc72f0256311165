/* ONNX model file -> graph IR (graph.h).
 *
 * Parsing is protobuf-c's, with code generated at build time from the
 * onnx.proto that Debian's libonnx-dev installs; this module only maps the
 * decoded messages onto the IR and bounds everything that comes from the file.
 */
#ifndef VISIOND_ONNX_IMPORT_H
#define VISIOND_ONNX_IMPORT_H

#include <stddef.h>

#include "graph.h"

/* Largest model file accepted (protobuf's own limit is 2 GiB). */
#define ONNX_MAX_FILE_BYTES ((size_t)2 << 30)
#define ONNX_MAX_NODES 200000
#define ONNX_MAX_NODE_IO 4096

engine_status onnx_import_file(const char *path, graph **out, engine_error *err);
engine_status onnx_import_buffer(const void *data, size_t size, const char *label, graph **out,
                                 engine_error *err);

#endif

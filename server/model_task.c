/* Output resolution and per-image post-processing by task; see model_task.h. */
#include "model_task.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Output `name`, or when name is "" the first whose last axis is (or is
 * not, with last4 false) 4 and that is not `except`; -1 when none. */
static int find_output(served_model *m, const char *name, int rank, int except, int last4,
                       engine_tensor_info *info, char *err, size_t errlen)
{
    engine_error e = {0};
    for (int i = 0; i < engine_output_count(m->engine); i++) {
        if (i == except)
            continue;
        if (engine_output_info(m->engine, i, 1, info, &e)) {
            snprintf(err, errlen, "%s", e.message);
            return -1;
        }
        bool named = name[0] && strcmp(info->name, name) == 0;
        bool fits = info->rank == rank && info->dtype == DTYPE_FLOAT32 &&
                    (last4 < 0 || (info->dims[rank - 1] == 4) == (last4 == 1));
        if (named && !fits) {
            snprintf(err, errlen, "output '%s' is not a float32 tensor of rank %d%s", name, rank,
                     last4 == 1 ? " ending in 4" : "");
            return -1;
        }
        if (named || (!name[0] && fits))
            return i;
    }
    if (name[0])
        snprintf(err, errlen, "the model has no output named '%s'", name);
    else
        snprintf(err, errlen, "no float32 output of rank %d%s: name it in model.json's output",
                 rank, last4 == 1 ? " ending in 4 (boxes)" : "");
    return -1;
}

int model_task_resolve(served_model *m, char *err, size_t errlen)
{
    const model_config *c = &m->cfg;
    engine_tensor_info a, b;
    if (c->task == TASK_CLASSIFY)
        return 0;
    if (!m->image_input) {
        snprintf(err, errlen, "task %s needs an image input (N, C, H, W)",
                 model_task_name(c->task));
        return -1;
    }
    if (c->task == TASK_SEGMENT) {
        if ((m->task_out[0] = find_output(m, c->logits_name, 4, -1, -1, &a, err, errlen)) < 0)
            return -1;
        if (a.dims[1] < 1 || a.dims[1] > 65535) {
            snprintf(err, errlen, "the logits have %lld classes (1 to 65535 work)",
                     (long long)a.dims[1]);
            return -1;
        }
        memcpy(m->task_dims, &a.dims[1], 3 * sizeof(int64_t));
        m->task_out_name[0] = a.name;
        return 0;
    }
    if (c->detect.layout == DETECT_YOLO) {
        if ((m->task_out[0] = find_output(m, c->predictions_name, 3, -1, -1, &a, err, errlen)) < 0)
            return -1;
        if (a.dims[1] < 5) {
            snprintf(err, errlen, "yolo predictions [N, 4 + C, K] need at least 5 rows, not %lld",
                     (long long)a.dims[1]);
            return -1;
        }
        m->task_dims[0] = a.dims[2];
        m->task_dims[1] = a.dims[1] - 4;
        m->task_out_name[0] = a.name;
    } else {
        if ((m->task_out[0] = find_output(m, c->boxes_name, 3, -1, 1, &a, err, errlen)) < 0 ||
            (m->task_out[1] = find_output(m, c->scores_name, 3, m->task_out[0],
                                          c->scores_name[0] ? -1 : 0, &b, err, errlen)) < 0)
            return -1;
        if (a.dims[1] != b.dims[1]) {
            snprintf(err, errlen, "boxes '%s' has %lld boxes but scores '%s' %lld", a.name,
                     (long long)a.dims[1], b.name, (long long)b.dims[1]);
            return -1;
        }
        m->task_dims[0] = a.dims[1];
        m->task_dims[1] = b.dims[2];
        m->task_out_name[0] = a.name;
        m->task_out_name[1] = b.name;
    }
    if (m->task_dims[0] > (1 << 24)) {
        snprintf(err, errlen, "%lld boxes per image is more than visiond decodes (%d)",
                 (long long)m->task_dims[0], 1 << 24);
        return -1;
    }
    if (c->detect.background_class >= m->task_dims[1]) {
        snprintf(err, errlen, "output.background_class %d is not one of the %lld classes",
                 c->detect.background_class, (long long)m->task_dims[1]);
        return -1;
    }
    return 0;
}

/* Item `item` of output k. */
static const float *item_of(const served_model *m, void *const *outputs, int k, int item)
{
    return (const float *)outputs[k] + (size_t)item * batcher_output_elems(m->batcher, k);
}

int model_task_detect(const served_model *m, void *const *outputs, int item,
                      const preproc_geometry *g, detection **out)
{
    const detect_params *p = &m->cfg.detect;
    int64_t k = m->task_dims[0], c = m->task_dims[1];
    detection *d = malloc(sizeof *d * (size_t)(k ? k : 1));
    if (!(*out = d))
        return -1;
    const float *a = item_of(m, outputs, m->task_out[0], item);
    const float *b = p->layout == DETECT_YOLO ? NULL : item_of(m, outputs, m->task_out[1], item);
    int n = detect_decode(p, a, b, k, c, m->cfg.pre.width, m->cfg.pre.height, d);
    n = detect_nms(d, n, p->max_candidates, p->iou_threshold, p->class_agnostic,
                   p->max_detections);
    if (n > 0)
        detect_to_image(d, n, g);
    return n;
}

int model_task_segment(const served_model *m, void *const *outputs, int item,
                       const preproc_geometry *g, uint16_t **mask)
{
    int c = (int)m->task_dims[0], h = (int)m->task_dims[1], w = (int)m->task_dims[2];
    uint16_t *labels = malloc(sizeof(uint16_t) * (size_t)h * (size_t)w);
    *mask = malloc(sizeof(uint16_t) * (size_t)g->image_w * (size_t)g->image_h);
    int rc = -1;
    if (labels && *mask && !segment_argmax(item_of(m, outputs, m->task_out[0], item), c, h, w,
                                           labels))
        rc = segment_to_image(labels, h, w, m->cfg.pre.width, m->cfg.pre.height, g, *mask);
    free(labels);
    if (rc) {
        free(*mask);
        *mask = NULL;
    }
    return rc;
}

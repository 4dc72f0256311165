/* What a model's task makes of its outputs, one image at a time: the
 * detections of /detect and the mask of /segment, in the image's pixels.
 * The HTTP side (api_tasks.c) only formats them. */
#ifndef VISIOND_MODEL_TASK_H
#define VISIOND_MODEL_TASK_H

#include <stddef.h>
#include <stdint.h>

#include "../engine/detect.h"
#include "model_repo.h"

/* At load: finds the outputs the task reads (model.json's names, else by
 * shape) and checks their shapes; fills m->task_out and m->task_dims. */
int model_task_resolve(served_model *m, char *err, size_t errlen);

/* Item `item` of a job's outputs -> its detections in image pixels, best
 * first (*out: malloc'd, the caller frees). Returns the count, -1 when out
 * of memory. */
int model_task_detect(const served_model *m, void *const *outputs, int item,
                      const preproc_geometry *g, detection **out);

/* Item `item` -> its mask at the image's size (g->image_w x g->image_h
 * labels, malloc'd). -1 when out of memory. */
int model_task_segment(const served_model *m, void *const *outputs, int item,
                       const preproc_geometry *g, uint16_t **mask);

#endif

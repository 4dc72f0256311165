/* Detector outputs -> boxes: decoding the two common output layouts,
 * score thresholds, non-maximum suppression, and mapping boxes from the
 * model's input pixels back to the image's.
 *
 * Layouts (per image, batch axis removed):
 *   DETECT_BOXES_SCORES  boxes [K, 4] corners (x1, y1, x2, y2), fractions of
 *                        the input size or input pixels, and scores [K, C]
 *                        (SSD exports, the Ultraface face detector);
 *   DETECT_YOLO          predictions [4 + C, K]: centre x, centre y, width,
 *                        height in input pixels, then C class scores
 *                        (YOLOv8-style exports).
 * Each box takes its best class (the background class left out); it is a
 * candidate when that score is above score_threshold.
 *
 * NMS is torchvision.ops.batched_nms's: candidates in decreasing score
 * (ties: lower box index first), each kept unless a kept box of the same
 * class (any class when class_agnostic) overlaps it with an IoU above
 * iou_threshold, computed in float32 as torchvision's CPU kernel does, so
 * the same boxes survive in the same order. Candidates with a NaN or
 * infinite score or coordinate are dropped before it.
 */
#ifndef VISIOND_DETECT_H
#define VISIOND_DETECT_H

#include <stdbool.h>
#include <stdint.h>

#include "preproc.h"

typedef enum { DETECT_BOXES_SCORES = 0, DETECT_YOLO } detect_layout;
typedef enum { DETECT_ACT_NONE = 0, DETECT_ACT_SIGMOID, DETECT_ACT_SOFTMAX } detect_activation;

typedef struct {
    detect_layout layout;
    bool normalized;             /* boxes_scores: boxes are fractions of the input size */
    detect_activation activation;/* applied to the scores first */
    float score_threshold;
    double iou_threshold;
    int max_detections;
    int max_candidates;          /* the best this many candidates enter NMS */
    bool class_agnostic;
    int background_class;        /* -1: none */
} detect_params;

typedef struct {
    float box[4];      /* x1, y1, x2, y2 */
    float score;
    int class_index;
    int anchor;        /* the box's index in the model's output */
} detection;

void detect_params_defaults(detect_params *p);

/* The candidates of one image, in input pixels (input_w x input_h), into
 * out (room for k); returns how many. boxes_scores: a = boxes [k, 4],
 * b = scores [k, c]; yolo: a = predictions [4 + c, k], b unused. */
int detect_decode(const detect_params *p, const float *a, const float *b, int64_t k, int64_t c,
                  int input_w, int input_h, detection *out);

/* Non-maximum suppression over d[0..n): of the best max_candidates (< 0:
 * all), the kept detections, best first, move to the front; returns how
 * many (at most max_keep; < 0: no limit). -1 when out of memory. */
int detect_nms(detection *d, int n, int max_candidates, double iou_threshold,
               bool class_agnostic, int max_keep);

/* Input pixels -> the image's pixels (clipped to it), undoing the resize,
 * crop or letterbox that g describes. */
void detect_to_image(detection *d, int n, const preproc_geometry *g);

/* Segmentation: logits [c, h, w] -> the index of each pixel's largest
 * logit (the first on ties, as torch.argmax). -1: out of memory. */
int segment_argmax(const float *logits, int c, int h, int w, uint16_t *labels);

/* labels (h x w, over the model's input of input_w x input_h) -> a mask
 * of the image's size (g->image_w x g->image_h): each image pixel takes
 * the label of the input pixel it was resized into, by torch's "nearest"
 * rule; pixels a crop cut off take the nearest edge's. -1: out of memory. */
int segment_to_image(const uint16_t *labels, int h, int w, int input_w, int input_h,
                     const preproc_geometry *g, uint16_t *mask);

#endif

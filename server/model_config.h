/* A served model's model.json: preprocessing, output handling, batching.
 *
 *   {"input":  {"width": 224, "height": 224, "color": "rgb" | "bgr" | "gray",
 *               "resize": "shorter_side_crop" | "stretch", "resize_shorter_side": 256,
 *               "scale": 0.00392156862745098, "mean": [0.485, 0.456, 0.406],
 *               "std": [0.229, 0.224, 0.225], "jpeg_dct_scaling": "auto"},
 *    "task": "classify" | "detect" | "segment",
 *    "output": {"softmax": true},
 *    "batching": {"max_batch_size": 16, "max_queue_delay_us": 2000,
 *                 "max_queue_size": 256, "timeout_ms": 10000},
 *    "version_policy": {"latest": {"num_versions": 1}}}
 *
 * Defaults for missing keys: width and height from the model's input (when
 * fixed; otherwise required), color "rgb", resize "shorter_side_crop" with
 * the shorter side at 8/7 of the crop (256 for 224), scale 1/255, mean 0,
 * std 1 (a single number applies to every channel), softmax true, and the
 * batching values shown above. jpeg_dct_scaling: true lets large JPEGs
 * decode at 1/2 to 1/8 size straight from their DCT coefficients when that
 * still leaves enough pixels for the resize, as PIL's draft mode does:
 * decoding gets two to four times cheaper, at the price of pixels that
 * differ slightly (up to half a pixel of shift) from torchvision's exact
 * pipeline, which false reproduces. "auto" (the default) scales only images
 * at least four times what the resize needs, so the resampler still starts
 * from twice its output: a 7000-pixel photo for a 224-pixel model decodes at
 * 1/8 (64 times less work and memory) while photos near the model's size
 * decode exactly. Unknown keys and out-of-range values are errors naming
 * the key.
 *
 * input.resize may also be "letterbox" (the whole image scaled to fit,
 * centred, bordered with input.pad_value, 0-255, default 114).
 *
 * The output section depends on the task:
 *   classify: {"softmax": true}
 *   detect:   {"layout": "boxes_scores" | "yolo", "boxes": NAME, "scores": NAME,
 *              "predictions": NAME, "coordinates": "normalized" | "pixels",
 *              "score_activation": "none" | "sigmoid" | "softmax",
 *              "score_threshold": 0.5, "iou_threshold": 0.45, "max_detections": 100,
 *              "max_candidates": 10000, "nms": "per_class" | "class_agnostic",
 *              "background_class": null | INDEX}
 *             (engine/detect.h describes the layouts; the output names are
 *             optional: by default the boxes are the output whose last axis is
 *             4, the scores the other, the predictions the first output)
 *   segment:  {"logits": NAME} (default: the first output; [N, C, H, W])
 *
 * version_policy (Triton's form; only in the model's own model.json, not a
 * version folder's): which of the version folders are served:
 * {"latest": {"num_versions": N}} (the N highest, default 1), {"all": {}},
 * or {"specific": {"versions": [1, 3]}}.
 */
#ifndef VISIOND_MODEL_CONFIG_H
#define VISIOND_MODEL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../engine/detect.h"
#include "../engine/preproc.h"

typedef enum { TASK_CLASSIFY = 0, TASK_DETECT, TASK_SEGMENT } model_task;

typedef enum { VERSIONS_LATEST = 0, VERSIONS_ALL, VERSIONS_SPECIFIC } version_policy_kind;
#define MAX_POLICY_VERSIONS 64

typedef struct {
    version_policy_kind kind;
    int latest;                                /* VERSIONS_LATEST: how many */
    int n_specific;                            /* VERSIONS_SPECIFIC */
    int64_t specific[MAX_POLICY_VERSIONS];
} version_policy;

typedef struct {
    model_task task;
    preproc_params pre;  /* width/height 0 until resolved against the model */
    bool softmax;
    detect_params detect;
    /* output names from "boxes", "scores", "predictions", "logits"; "": by shape */
    char boxes_name[128], scores_name[128], predictions_name[128], logits_name[128];
    int max_batch_size;
    int64_t max_queue_delay_us;
    int max_queue_size;
    int64_t timeout_ms;
    version_policy versions;
    bool has_version_policy; /* the file had one */
} model_config;

void model_config_defaults(model_config *c);
const char *model_task_name(model_task t);
/* Whether the policy serves `version`, given every version in the folder
 * (ascending). */
bool version_policy_wants(const version_policy *p, int64_t version, const int64_t *all, int n);
/* Reads path over the defaults; a missing file is not an error (*found = false). */
int model_config_load(const char *path, model_config *c, bool *found, char *err, size_t errlen);
/* Fills width/height from the model's input shape (N, C, H, W) where the
 * file left them out, and checks everything agrees with it. */
int model_config_resolve(model_config *c, int64_t channels, int64_t height, int64_t width,
                         char *err, size_t errlen);

#endif

/* `visiond info`: what a model is and what it costs.
 *
 *   visiond info --model M.onnx [--batch N] [--device D] [--layers] [--json]
 *
 * Inputs and outputs, layer count, parameters, FLOPs and peak activation
 * memory for the batch, and the backend that would run it.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "metrics.h"

static void usage(void)
{
    fprintf(stderr, "usage: visiond info --model M.onnx [--batch N] [--device D] [--layers] "
                    "[--json]\n");
}

#define MAX_OPS 128 /* more kinds than visiond has operators */

static json_t *tensor_json(const engine_tensor_info *t)
{
    json_t *o = json_object(), *dims = json_array();
    for (int d = 0; d < t->rank; d++)
        json_array_append_new(dims, t->dims[d] < 0 ? json_string("batch")
                                                   : json_integer(t->dims[d]));
    json_object_set_new(o, "name", json_string(t->name));
    json_object_set_new(o, "dtype", json_string(dtype_name(t->dtype)));
    json_object_set_new(o, "shape", dims);
    return o;
}

static void print_tensor(const char *kind, const engine_tensor_info *t)
{
    printf("%-8s %-24s %-8s ", kind, t->name, dtype_name(t->dtype));
    for (int d = 0; d < t->rank; d++) {
        if (d)
            printf("x");
        if (t->dims[d] < 0)
            printf("N");
        else
            printf("%lld", (long long)t->dims[d]);
    }
    printf("\n");
}

int cli_info(int argc, char **argv)
{
    const char *model = NULL, *device = "cpu";
    int batch = 1;
    bool json = false, layers = false, bad = false;
    for (int i = 0; i < argc && !bad; i++) {
        const char *v;
        if ((v = cli_opt(argc, argv, &i, "--model", &bad)))
            model = v;
        else if ((v = cli_opt(argc, argv, &i, "--batch", &bad)))
            bad = !cli_parse_int(v, 1, 4096, &batch);
        else if ((v = cli_opt(argc, argv, &i, "--device", &bad)))
            device = v;
        else if (cli_flag(argv, i, "--json"))
            json = true;
        else if (cli_flag(argv, i, "--layers"))
            layers = true;
        else if (!bad) {
            fprintf(stderr, "visiond info: unknown argument '%s'\n", argv[i]);
            bad = true;
        }
    }
    if (bad || !model) {
        usage();
        return EXIT_USAGE;
    }
    engine *e = cli_load(model, device, 0, batch, NULL);
    if (!e)
        return EXIT_MODEL;
    if (!engine_batch_is_dynamic(e))
        batch = engine_max_batch(e);
    engine_model_summary mi;
    engine_error err = {0};
    if (engine_model_info(e, batch, &mi, &err)) {
        fprintf(stderr, "visiond info: %s\n", err.message);
        engine_free(e);
        return EXIT_MODEL;
    }
    engine_memory_info mem;
    engine_memory(e, &mem);
    unsigned long long vsize = 0, rss = 0;
    process_memory(&vsize, &rss);
    engine_op_usage usage[MAX_OPS];
    int n_ops = engine_operator_usage(e, batch, usage, MAX_OPS, &err);
    if (n_ops < 0) {
        fprintf(stderr, "visiond info: %s\n", err.message);
        engine_free(e);
        return EXIT_MODEL;
    }
    int ni = engine_input_count(e), no = engine_output_count(e);
    if (json) {
        json_t *root = json_object(), *ins = json_array(), *outs = json_array();
        for (int k = 0; k < ni; k++) {
            engine_tensor_info t;
            engine_input_info(e, k, &t);
            json_array_append_new(ins, tensor_json(&t));
        }
        for (int k = 0; k < no; k++) {
            engine_tensor_info t;
            if (!engine_output_info(e, k, batch, &t, &err))
                json_array_append_new(outs, tensor_json(&t));
        }
        json_object_set_new(root, "model", json_string(model));
        json_object_set_new(root, "opset", json_integer(mi.opset));
        json_object_set_new(root, "backend", json_string(engine_backend_description(e)));
        json_object_set_new(root, "batch", json_integer(batch));
        json_object_set_new(root, "dynamic_batch", json_boolean(engine_batch_is_dynamic(e)));
        json_object_set_new(root, "inputs", ins);
        json_object_set_new(root, "outputs", outs);
        json_object_set_new(root, "nodes_in_file", json_integer(mi.nodes_in_file));
        json_object_set_new(root, "layers", json_integer(mi.layers));
        json_object_set_new(root, "parameters", json_integer(mi.parameters));
        json_object_set_new(root, "flops", json_integer(mi.flops));
        json_object_set_new(root, "peak_activation_bytes",
                            json_integer((json_int_t)mi.peak_activation_bytes));
        json_object_set_new(root, "memory",
                            json_pack("{sI sI sI sI sI sI}", "weights", (json_int_t)mem.weights,
                                      "backend_weights", (json_int_t)mem.backend_weights,
                                      "arena", (json_int_t)mem.arena, "workspace",
                                      (json_int_t)mem.workspace, "resident",
                                      (json_int_t)mem.resident, "process_rss",
                                      (json_int_t)rss));
        json_t *ops = json_array();
        for (int k = 0; k < n_ops && k < MAX_OPS; k++) {
            json_t *o = json_object();
            json_object_set_new(o, "op", json_string(usage[k].op));
            json_object_set_new(o, "steps", json_integer(usage[k].steps));
            json_object_set_new(o, "flops", json_integer(usage[k].flops));
            json_object_set_new(o, "backend", json_string(usage[k].backend));
            json_array_append_new(ops, o);
        }
        json_object_set_new(root, "operators", ops);
        if (engine_backend_note(e))
            json_object_set_new(root, "placement", json_string(engine_backend_note(e)));
        char *s = json_dumps(root, JSON_INDENT(1));
        if (s)
            printf("%s\n", s);
        free(s);
        json_decref(root);
    } else {
        printf("model      %s (ONNX opset %d)\n", model, mi.opset);
        printf("backend    %s\n", engine_backend_description(e));
        for (int k = 0; k < ni; k++) {
            engine_tensor_info t;
            engine_input_info(e, k, &t);
            print_tensor("input", &t);
        }
        for (int k = 0; k < no; k++) {
            engine_tensor_info t;
            if (!engine_output_info(e, k, batch, &t, &err))
                print_tensor("output", &t);
        }
        printf("layers     %d (from %d nodes in the file)\n", mi.layers, mi.nodes_in_file);
        printf("parameters %lld (%.1f MB)\n", (long long)mi.parameters, mi.parameters * 4 / 1e6);
        printf("FLOPs      %.3f G at batch %d (multiply-add = 2)\n", mi.flops / 1e9, batch);
        printf("operators  %d kinds (steps, share of FLOPs, backend)\n", n_ops);
        for (int k = 0; k < n_ops && k < MAX_OPS; k++)
            printf("  %-22s %5d %6.1f%%  %s\n", usage[k].op, usage[k].steps,
                   mi.flops ? 100.0 * (double)usage[k].flops / (double)mi.flops : 0.0,
                   usage[k].backend);
        if (engine_backend_note(e))
            printf("placement  %s\n", engine_backend_note(e));
        printf("peak activation memory %.2f MB at batch %d\n", mi.peak_activation_bytes / 1048576.0,
               batch);
        printf("memory     %.1f MB resident: %.1f MB weights, %.1f MB the backend's copies, "
               "%.1f MB arena, %.1f MB workspace (this process: %.1f MB)\n",
               mem.resident / 1048576.0, mem.weights / 1048576.0, mem.backend_weights / 1048576.0,
               mem.arena / 1048576.0, mem.workspace / 1048576.0, rss / 1048576.0);
        if (layers) {
            for (int l = 0; l < mi.layers; l++) {
                engine_layer_summary li;
                char shape[128];
                if (engine_layer_info(e, batch, l, &li, &err))
                    break;
                printf("  %-48s %-16s %-18s %10.3f MFLOP\n", li.name, li.op,
                       shape_format(&li.output, shape, sizeof shape), li.flops / 1e6);
            }
        }
    }
    engine_free(e);
    return 0;
}

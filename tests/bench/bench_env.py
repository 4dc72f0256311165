"""The environment a benchmark gives visiond, and what it says about it.

A benchmark measures the project's default behaviour: visiond choosing its
own OpenBLAS kernel at start-up. Hosts that set OPENBLAS_CORETYPE or
OPENBLAS_L2_SIZE for every process would otherwise have the table measure
their choice, so both are cleared for the visiond side unless the caller
asks to keep them (--keep-blas-env, or BENCH_KEEP_BLAS_ENV=1 through make),
and the table's header says which was done and which kernel each side ran.
"""
import os

CLEARED_FOR_VISIOND = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def add_argument(parser):
    parser.add_argument("--keep-blas-env", action="store_true",
                        default=os.environ.get("BENCH_KEEP_BLAS_ENV", "") not in ("", "0"),
                        help="give visiond the caller's OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE "
                             "instead of clearing them")


def visiond_env(keep):
    """(environment for visiond, one line saying what was done with it)."""
    present = {k: os.environ[k] for k in CLEARED_FOR_VISIOND if k in os.environ}
    if not present:
        return dict(os.environ), "no OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE in the environment"
    shown = " ".join(f"{k}={v}" for k, v in present.items())
    if keep:
        return dict(os.environ), f"kept the caller's {shown} (--keep-blas-env)"
    env = {k: v for k, v in os.environ.items() if k not in present}
    return env, (f"cleared {shown} for visiond, to measure its own kernel choice "
                 "(--keep-blas-env keeps them)")


def ort_gemm_description():
    """ONNX Runtime's CPU provider runs its own GEMM (MLAS), which dispatches on
    CPUID at load time and reads no OPENBLAS_* variable; which kernel family it
    takes follows from the CPU's flags (MLAS's own dispatch rule, not a
    reading from inside ONNX Runtime, which does not report it)."""
    try:
        flags = next(l for l in open("/proc/cpuinfo") if l.startswith("flags")).split()
    except (OSError, StopIteration):
        return "MLAS (ONNX Runtime's own GEMM)"
    if "avx512f" in flags:
        isa = "AVX-512F"
    elif "avx2" in flags and "fma" in flags:
        isa = "AVX2+FMA"
    else:
        isa = "SSE"
    return (f"MLAS (ONNX Runtime's own GEMM), {isa} kernels by CPUID dispatch; "
            "OPENBLAS_* do not apply")

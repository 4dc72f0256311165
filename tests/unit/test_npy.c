/* Unit test of the .npy reader/writer: round trips and refusal of files
 * whose header lies about their size, before anything is allocated. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "npy.h"

#include "check.h"

static void write_raw(const char *path, const char *header, size_t data_bytes)
{
    FILE *f = fopen(path, "wb");
    unsigned short len = (unsigned short)strlen(header);
    fwrite("\x93NUMPY\x01\x00", 1, 8, f);
    fwrite(&len, 2, 1, f);
    fwrite(header, 1, len, f);
    for (size_t i = 0; i < data_bytes; i++)
        fputc(0, f);
    fclose(f);
}

/* Reads path in a child whose address space may grow by at most 256 MiB
 * more: a reader that believed a lying header would fail to allocate. */
static void check_refused_within_a_small_address_space(const char *path, const char *why)
{
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        long pages = 0;
        FILE *f = fopen("/proc/self/statm", "r");
        if (!f || fscanf(f, "%ld", &pages) != 1)
            _exit(3);
        fclose(f);
        rlim_t limit = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + ((rlim_t)256 << 20);
        struct rlimit rl = {limit, limit};
        if (setrlimit(RLIMIT_AS, &rl))
            _exit(3);
        char err[512];
        npy_array a;
        int rc = npy_read(path, &a, err, sizeof err);
        if (rc == 0)
            _exit(1);
        if (!strstr(err, why)) {
            fprintf(stderr, "test_npy: got '%s', expected '%s'\n", err, why);
            _exit(2);
        }
        _exit(0);
    }
    int status;
    CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

int main(void)
{
    char err[512], path[] = "/tmp/visiond_test_npy_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    shape_t s = {.rank = 3, .dim = {2, 3, 5}};
    float data[30];
    for (int i = 0; i < 30; i++)
        data[i] = (float)i * 0.5f - 3.0f;
    CHECK(npy_write(path, DTYPE_FLOAT32, &s, data, err, sizeof err) == 0);
    npy_array a;
    CHECK(npy_read(path, &a, err, sizeof err) == 0);
    CHECK(a.dtype == DTYPE_FLOAT32 && shape_equal(&a.shape, &s));
    CHECK(memcmp(a.data, data, sizeof data) == 0);
    npy_free(&a);

    shape_t one = {.rank = 1, .dim = {4}};
    int64_t ints[4] = {-1, 0, 7, 1LL << 40};
    CHECK(npy_write(path, DTYPE_INT64, &one, ints, err, sizeof err) == 0);
    CHECK(npy_read(path, &a, err, sizeof err) == 0);
    CHECK(a.dtype == DTYPE_INT64 && a.shape.rank == 1 && memcmp(a.data, ints, sizeof ints) == 0);
    npy_free(&a);

    write_raw(path, "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 4), }\n", 60);
    CHECK(npy_read(path, &a, err, sizeof err) != 0 && strstr(err, "shorter"));
    write_raw(path, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }\n", 12);
    CHECK(npy_read(path, &a, err, sizeof err) != 0 && strstr(err, "longer"));
    write_raw(path, "{'descr': '<f4', 'fortran_order': False, 'shape': (65536, 65536, 65536), }\n",
              0);
    CHECK(npy_read(path, &a, err, sizeof err) != 0 && strstr(err, "absurd"));
    write_raw(path, "{'descr': '<u2', 'fortran_order': False, 'shape': (2,), }\n", 4);
    CHECK(npy_read(path, &a, err, sizeof err) != 0 && strstr(err, "not supported"));
    write_raw(path, "{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }\n", 8);
    CHECK(npy_read(path, &a, err, sizeof err) != 0 && strstr(err, "Fortran"));
    /* 150 bytes claiming 800 MB of float64 (within the element bound on 32-bit too) */
    write_raw(path, "{'descr': '<f8', 'fortran_order': False, 'shape': (100000000,), }\n", 70);
    check_refused_within_a_small_address_space(path, "shorter");
    remove(path);
    printf("test_npy: ok\n");
    return 0;
}

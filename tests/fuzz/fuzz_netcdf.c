/* fuzz_netcdf: the input is a NetCDF file read by the `netcdf` data source,
 * whole (train_fraction 1) and split (0.5). Only the classic formats (CDF1,
 * CDF2 64-bit offset, CDF5) are tried: crashes inside libhdf5 on malformed
 * HDF5 files are not ours to fix. A success must give a consistent data set,
 * a failure a one-line message naming the file or the config key. */
#include "ipmpi/base/error.h"
#include "ipmpi/io/config.h"
#include "ipmpi/io/dataset.h"

#include "fuzz_scratch.h"

#include <stdint.h>
#include <string.h>

static fuzz_scratch input_file;

/* libnetcdf 4.9.0 allocates header arrays and names of whatever size the
 * header declares before checking them against the file (a CDF5 name length
 * of 2^58 reaches calloc; a dimension count of 10^8 builds a hash map that
 * takes seconds to free). Without sanitizers malloc returns NULL for the
 * absurd sizes and nc_open fails cleanly with NC_ENOMEM; make ASan's
 * allocator fail the same way above 64 MiB instead of aborting, so only our
 * own faults are reported (our reader's allocations are bounded by the
 * file's size, a few KiB here). */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "allocator_may_return_null=1:max_allocation_size_mb=64";
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_scratch_open_temporary(&input_file);
    return 0;
}

static int is_classic(const uint8_t *data, size_t size)
{
    return size >= 4 && memcmp(data, "CDF", 3) == 0 &&
           (data[3] == 1 || data[3] == 2 || data[3] == 5);
}

static void check_dataset(const ipm_dataset *d, int n_classes)
{
    fuzz_require(d->n >= 0 && d->dim > 0, "bad shape", NULL);
    fuzz_require(d->n_classes == n_classes, "train and test disagree on classes", NULL);
    fuzz_require(d->n == 0 || (d->n_x >= 1 && d->n_x <= d->n), "bad n_x", NULL);
    for (int i = 0; i < d->n; i++) {
        fuzz_require(d->x_id[i] >= 0 && d->x_id[i] < d->n_x, "x id out of range", NULL);
        fuzz_require(d->y[i] >= 0 && d->y[i] < d->n_classes, "label out of range", NULL);
    }
}

static void load(double train_fraction)
{
    ipm_config cfg;
    ipm_config_defaults(&cfg);
    cfg.source = IPM_DATA_NETCDF;
    snprintf(cfg.data_path, sizeof cfg.data_path, "%s", input_file.path);
    cfg.train_fraction = train_fraction;
    cfg.seed = 7;
    ipm_dataset train, test;
    char err[IPM_ERRLEN] = "";
    if (ipm_dataset_load(&cfg, &train, &test, err) == 0) {
        fuzz_require(train.n >= 1, "empty training set", NULL);
        fuzz_require(train_fraction < 1 ? test.n >= 1 : test.n == 0, "bad split", NULL);
        check_dataset(&train, train.n_classes);
        check_dataset(&test, train.n_classes);
        ipm_dataset_free(&train);
        ipm_dataset_free(&test);
    } else {
        fuzz_require(strnlen(err, IPM_ERRLEN) < IPM_ERRLEN && strchr(err, '\n') == NULL,
                     "message not one line", err);
        fuzz_require(strstr(err, input_file.path) != NULL || strstr(err, "[data]") != NULL,
                     "message names neither the file nor the config key", err);
        fuzz_require(train.x == NULL && test.x == NULL, "failed load left data", NULL);
    }
    ipm_config_free(&cfg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!is_classic(data, size))
        return -1; /* not added to the corpus */
    fuzz_scratch_write(&input_file, data, size);
    load(1.0);
    load(0.5);
    return 0;
}

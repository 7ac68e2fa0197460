/* fuzz_checkpoint: the input is a checkpoint file. It is read as it is, and
 * again with its trailing checksum recomputed, so that mutations get past the
 * checksum into the parser. A file that reads must hold consistent lengths;
 * its replica states are unpacked into three fixture replicas (the corpus is
 * written by `test_checkpoint --corpus`, with the same fixture), and a state
 * that unpacks must train without faults (its batch order indexes the data).
 * A failure must leave a one-line message naming the file. Any allocation
 * above 64 MiB is a crash (libFuzzer itself takes 20 MiB at once): sizes
 * must come from the file's real size. */
#include "ipmpi/base/error.h"
#include "ipmpi/io/checkpoint.h"
#include "../replica_util.h"

#include "../checkpoint_fixture.h"
#include "fuzz_scratch.h"

#include <stdint.h>
#include <string.h>

const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "max_allocation_size_mb=64";
}

enum { REPLICAS = 3 };

static struct {
    fuzz_scratch file;
    ipm_config cfg;
    ipm_dataset data;
    char *config_text;
    ipm_replica rep[REPLICAS];
    unsigned char *pristine[REPLICAS]; /* each replica's packed state, to reset it */
    size_t pristine_size[REPLICAS];
} fx;

static void cleanup(void)
{
    unlink(fx.file.path);
    for (int r = 0; r < REPLICAS; r++) {
        ipm_replica_free(&fx.rep[r]);
        free(fx.pristine[r]);
    }
    free(fx.config_text);
    fixture_data_free(&fx.data);
    ipm_config_free(&fx.cfg);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    char err[IPM_ERRLEN];
    fuzz_scratch_open(&fx.file);
    fixture_config(&fx.cfg);
    fixture_data(&fx.data, FIXTURE_SAMPLES, FIXTURE_DATA_SEED);
    fx.config_text = ipm_config_format(&fx.cfg);
    fuzz_require(fx.config_text != NULL, "out of memory", NULL);
    for (int r = 0; r < REPLICAS; r++) {
        fuzz_require(ipm_replica_for_config(&fx.rep[r], &fx.cfg, &fx.data, r, err) == 0, "init",
                     err);
        fx.pristine_size[r] = ipm_replica_state_size(&fx.rep[r]);
        fx.pristine[r] = malloc(fx.pristine_size[r]);
        fuzz_require(ipm_replica_pack(&fx.rep[r], fx.pristine[r], fx.pristine_size[r], err) == 0,
                     "pack", err);
    }
    atexit(cleanup);
    return 0;
}

static void require_message(const char *err)
{
    fuzz_require(strnlen(err, IPM_ERRLEN) < IPM_ERRLEN && strchr(err, '\n') == NULL,
                 "message not one line", err);
    fuzz_require(strstr(err, fx.file.path) != NULL, "message does not name the file", err);
}

static void try_state(int r, const unsigned char *blob, size_t size)
{
    char err[IPM_ERRLEN] = "";
    if (ipm_replica_unpack(&fx.rep[r], blob, size, err) != 0) {
        fuzz_require(strchr(err, '\n') == NULL && err[0], "unpack message", err);
        return;
    }
    train_on(&fx.rep[r], &fx.data);
    fuzz_require(ipm_replica_unpack(&fx.rep[r], fx.pristine[r], fx.pristine_size[r], err) == 0,
                 "pristine state refused", err);
}

static void check_read(void)
{
    ipm_checkpoint ck;
    char err[IPM_ERRLEN] = "";
    if (ipm_checkpoint_read(fx.file.path, &ck, err) != 0) {
        require_message(err);
        ipm_checkpoint_free(&ck);
        return;
    }
    fuzz_require(ck.config_text && ck.n_replicas >= 1 && ck.epoch >= 0 && ck.records >= 0,
                 "inconsistent checkpoint", NULL);
    (void)ipm_checkpoint_config_check(ck.config_text, &fx.cfg, err);
    for (int r = 0; r < ck.n_replicas && r < REPLICAS; r++)
        try_state(r, ck.replica[r], ck.replica_size[r]);
    ipm_checkpoint_free(&ck);
    ipm_checkpoint load;
    if (ipm_checkpoint_load(fx.file.path, &fx.cfg, REPLICAS, &load, err) != 0)
        fuzz_require(strchr(err, '\n') == NULL, "load message not one line", err);
    ipm_checkpoint_free(&load);
}

/* FNV-1a 64, as the format's checksum. */
static void fix_checksum(uint8_t *d, size_t size)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < size - 8; i++)
        h = (h ^ d[i]) * 0x100000001b3ULL;
    for (int i = 0; i < 8; i++)
        d[size - 8 + (size_t)i] = (uint8_t)(h >> (8 * i));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_scratch_write(&fx.file, data, size);
    check_read();
    if (size < 8)
        return 0;
    uint8_t *fixed = malloc(size);
    memcpy(fixed, data, size);
    fix_checksum(fixed, size);
    fuzz_scratch_write(&fx.file, fixed, size);
    free(fixed);
    check_read();
    return 0;
}

/* fuzz_config: the input is an INI file for ipm_config_load.
 * Loaded without and with fixed overrides; a loaded config must format,
 * reload from its own text and format identically (abort otherwise: a real
 * bug), and its epoch selections must expand for a small last epoch.
 * Failures must leave a one-line message. */
#include "ipmpi/base/error.h"
#include "ipmpi/io/config.h"

#include "fuzz_round_trip.h"
#include "fuzz_scratch.h"

#include <stdint.h>
#include <string.h>

static fuzz_scratch input_file;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_scratch_open_temporary(&input_file);
    return 0;
}

static void check_expansion(const ipm_epoch_spec *spec, int last)
{
    int *epochs = NULL, n = 0;
    char err[IPM_ERRLEN] = "";
    if (ipm_epochs_expand(spec, last, &epochs, &n, err) == 0) {
        for (int i = 0; i < n; i++)
            fuzz_require(epochs[i] >= 0 && epochs[i] <= last &&
                             (i == 0 || epochs[i] > epochs[i - 1]),
                         "expanded epochs not sorted, unique and in [0, last]", NULL);
    } else {
        fuzz_check_message(err);
    }
    free(epochs);
}

static void load_and_check(const char *const *overrides, int n_overrides)
{
    ipm_config cfg;
    char err[IPM_ERRLEN] = "";
    if (ipm_config_load(&cfg, input_file.path, overrides, n_overrides, err) == 0) {
        fuzz_check_round_trip(&cfg);
        int last = cfg.epochs < 300 ? cfg.epochs : 300;
        check_expansion(&cfg.info_epochs, last);
        check_expansion(&cfg.activation_epochs, last);
    } else {
        fuzz_check_message(err);
    }
    ipm_config_free(&cfg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const overrides[] = {"training.epochs = 40", "information.bins=12",
                                            "output.activations=none"};
    fuzz_scratch_write(&input_file, data, size);
    load_and_check(NULL, 0);
    load_and_check(overrides, 3);
    return 0;
}

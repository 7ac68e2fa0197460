/* fuzz_config: the input is an INI file for ipm_config_load.
 * Loaded without and with fixed overrides; a loaded config must format,
 * reload from its own text and format identically (abort otherwise: a real
 * bug), and its epoch selections must expand for a small last epoch.
 * Failures must leave a one-line message. */
#include "ipmpi/io/config.h"
#include "ipmpi/base/error.h"

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

static void check_message(const char *err)
{
    size_t len = strnlen(err, IPM_ERRLEN);
    fuzz_require(len > 0 && len < IPM_ERRLEN, "failure without a message", NULL);
    fuzz_require(strchr(err, '\n') == NULL, "message spans lines", err);
}

static void check_expansion(const ipm_epoch_spec *spec, int last)
{
    int *epochs = NULL, n = 0;
    char err[IPM_ERRLEN] = "";
    if (ipm_epochs_expand(spec, last, &epochs, &n, err) == 0) {
        for (int i = 0; i < n; i++)
            fuzz_require(epochs[i] >= 0 && epochs[i] <= last && (i == 0 || epochs[i] > epochs[i - 1]),
                    "expanded epochs not sorted, unique and in [0, last]", NULL);
    } else {
        check_message(err);
    }
    free(epochs);
}

/* format -> load -> format gives the same text. */
static void check_round_trip(const ipm_config *cfg)
{
    char *text = ipm_config_format(cfg);
    fuzz_require(text != NULL, "ipm_config_format returned NULL", NULL);
    ipm_config again;
    char err[IPM_ERRLEN] = "";
    /* From memory: a file rewritten per input cost a third of the time. */
    if (ipm_config_load_text(&again, text, "formatted", err) != 0) {
        fprintf(stderr, "formatted text:\n%s\n", text);
        fuzz_require(0, "formatted config does not load", err);
    }
    char *text2 = ipm_config_format(&again);
    fuzz_require(text2 != NULL, "ipm_config_format returned NULL", NULL);
    if (strcmp(text, text2) != 0) {
        fprintf(stderr, "first:\n%s\nsecond:\n%s\n", text, text2);
        fuzz_require(0, "format -> load -> format changed the text", NULL);
    }
    free(text2);
    free(text);
    ipm_config_free(&again);
}

static void load_and_check(const char *const *overrides, int n_overrides)
{
    ipm_config cfg;
    char err[IPM_ERRLEN] = "";
    if (ipm_config_load(&cfg, input_file.path, overrides, n_overrides, err) == 0) {
        check_round_trip(&cfg);
        int last = cfg.epochs < 300 ? cfg.epochs : 300;
        check_expansion(&cfg.info_epochs, last);
        check_expansion(&cfg.activation_epochs, last);
    } else {
        check_message(err);
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

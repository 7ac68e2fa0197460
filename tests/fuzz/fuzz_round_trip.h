/* fuzz_round_trip: the invariants every loaded config must keep, shared by
 * the config and command-line targets: a failure leaves a one-line message;
 * format -> load -> format gives the same text. */
#ifndef IPMPI_FUZZ_ROUND_TRIP_H
#define IPMPI_FUZZ_ROUND_TRIP_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ipmpi/base/error.h"
#include "ipmpi/io/config.h"
#include "fuzz_scratch.h"

static inline void fuzz_check_message(const char *err)
{
    size_t len = strnlen(err, IPM_ERRLEN);
    fuzz_require(len > 0 && len < IPM_ERRLEN - 1, "failure without a message", NULL);
    fuzz_require(strchr(err, '\n') == NULL, "message spans lines", err);
}

static inline void fuzz_check_round_trip(const ipm_config *cfg)
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

#endif

/* test_config: defaults, a file with every key, each class of error (with
 * file, line and key in the message), --set overrides, continuation lines,
 * the format -> load -> format round trip, and epoch expansion against
 * numpy's values. Fixtures are written to a fresh directory under /tmp. */
#include "ipmpi/base/error.h"
#include "ipmpi/io/config.h"

#include "check.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];
static char path[128]; /* dir/t.ini, the fixture most tests use */

static void write_file(const char *file, const char *text)
{
    FILE *f = fopen(file, "w");
    if (!f) {
        perror(file);
        exit(2);
    }
    fputs(text, f);
    fclose(f);
}

/* Loads text (through dir/t.ini) with overrides; returns load's status. */
static int load_text(ipm_config *cfg, const char *text, const char *const *overrides, int n,
                     char *err)
{
    write_file(path, text);
    err[0] = '\0';
    return ipm_config_load(cfg, path, overrides, n, err);
}

/* The load fails and its message contains every given piece. */
static void expect_error_with(const char *text, const char *const *overrides, int n,
                              const char *piece1, const char *piece2)
{
    ipm_config cfg;
    char err[IPM_ERRLEN];
    int rc = load_text(&cfg, text, overrides, n, err);
    CHECK(rc == -1);
    const char *pieces[] = {piece1, piece2};
    for (int i = 0; i < 2; i++)
        if (pieces[i] && !strstr(err, pieces[i])) {
            fprintf(stderr, "  message '%s'\n  lacks '%s'\n", err, pieces[i]);
            CHECK(strstr(err, pieces[i]) != NULL);
        }
    ipm_config_free(&cfg);
}

static void expect_error(const char *text, const char *piece1, const char *piece2)
{
    expect_error_with(text, NULL, 0, piece1, piece2);
}

static void test_defaults(void)
{
    ipm_config cfg;
    ipm_config_defaults(&cfg);
    CHECK(cfg.seed == 0);
    CHECK(cfg.replicas == 0);
    CHECK(strcmp(cfg.output, "ipmpi.nc") == 0);
    CHECK(cfg.threads == 1);
    CHECK(cfg.checkpoint[0] == '\0');
    CHECK(cfg.checkpoint_every == 0);
    CHECK(cfg.source == IPM_DATA_TISHBY12);
    CHECK(cfg.data_path[0] == '\0');
    CHECK(cfg.samples == 1000);
    CHECK(cfg.train_fraction == 1.0);
    static const int units[] = {10, 7, 5, 4, 3, 2};
    CHECK(cfg.n_layers == 6);
    for (int i = 0; i < 6; i++) {
        CHECK(cfg.layers[i].units == units[i]);
        CHECK(cfg.layers[i].activation == (i < 5 ? IPM_ACT_TANH : IPM_ACT_SOFTMAX));
    }
    CHECK(cfg.init == IPM_INIT_XAVIER);
    CHECK(cfg.epochs == 1000);
    CHECK(cfg.batch_size == 32);
    CHECK(cfg.optimizer == IPM_OPT_ADAM);
    CHECK(cfg.learning_rate == 0.001);
    CHECK(cfg.momentum == 0.9);
    CHECK(cfg.loss == IPM_LOSS_CROSS_ENTROPY);
    CHECK(cfg.batches_per_epoch == 0);
    CHECK(cfg.info_epochs.rule == IPM_EPOCHS_LOG && cfg.info_epochs.param == 100);
    CHECK(cfg.bins == 30);
    CHECK(cfg.range_lo == -1.0 && cfg.range_hi == 1.0);
    CHECK(cfg.estimators == (IPM_EST_SIMPLE | IPM_EST_POOLED | IPM_EST_SAMPLED));
    CHECK(cfg.kde_variance == 1e-3);
    CHECK(cfg.on == IPM_ON_TRAIN);
    CHECK(cfg.activation_epochs.rule == IPM_EPOCHS_LIST && cfg.activation_epochs.n_list == 0);

    /* An empty file gives the defaults too. */
    ipm_config loaded;
    char err[IPM_ERRLEN];
    CHECK(load_text(&loaded, "; nothing\n", NULL, 0, err) == 0);
    CHECK(strcmp(loaded.file, path) == 0);
    CHECK(loaded.epochs == 1000 && loaded.n_layers == 6 && loaded.bins == 30);
    ipm_config_free(&loaded);
    CHECK(strcmp(ipm_activation_name(IPM_ACT_TANH), "tanh") == 0);
    CHECK(strcmp(ipm_activation_name(IPM_ACT_SOFTMAX), "softmax") == 0);
    CHECK(strcmp(ipm_activation_name(IPM_ACT_LINEAR), "linear") == 0);
}

static const char full_file[] =
    "# every key, none at its default\n"
    "[run]\n"
    "seed = 18446744073709551615\n"
    "replicas = 5\n"
    "output = /tmp/some dir/run.nc\n"
    "threads = 2\n"
    "checkpoint = /tmp/some dir/run.ckpt\n"
    "checkpoint_every = 30\n"
    "\n"
    "[data]\n"
    "source = netcdf\n"
    "path = data/var_u.nc\n"
    "samples = 250\n"
    "train_fraction = 0.8\n"
    "[network]\n"
    "layers = dense:12:relu,dense:6:sigmoid ,  dense:4:linear, dense:3:softmax\n"
    "init = truncated_normal:0.1   ; inline comment\n"
    "[training]\n"
    "epochs = 20\n"
    "batch_size = 64\n"
    "optimizer = momentum\n"
    "learning_rate = 2.5e-3\n"
    "momentum = 0\n"
    "loss = mse\n"
    "batches_per_epoch = 1\n"
    "[information]\n"
    "epochs = 10, 0, 5, 2, 5, 1\n"
    "bins = 65535\n"
    "range = -0.5, 2\n"
    "estimators = sampled, simple\n"
    "on = all\n"
    "[output]\n"
    "activations = every:4\n";

static void test_full_file(void)
{
    ipm_config cfg;
    char err[IPM_ERRLEN];
    int rc = load_text(&cfg, full_file, NULL, 0, err);
    CHECK(rc == 0);
    if (rc)
        fprintf(stderr, "  %s\n", err);
    CHECK(cfg.seed == UINT64_MAX);
    CHECK(cfg.replicas == 5);
    CHECK(strcmp(cfg.output, "/tmp/some dir/run.nc") == 0);
    CHECK(cfg.threads == 2);
    CHECK(strcmp(cfg.checkpoint, "/tmp/some dir/run.ckpt") == 0);
    CHECK(cfg.checkpoint_every == 30);
    CHECK(cfg.source == IPM_DATA_NETCDF);
    CHECK(strcmp(cfg.data_path, "data/var_u.nc") == 0);
    CHECK(cfg.samples == 250);
    CHECK(cfg.train_fraction == 0.8);
    CHECK(cfg.n_layers == 4);
    CHECK(cfg.layers[0].units == 12 && cfg.layers[0].activation == IPM_ACT_RELU);
    CHECK(cfg.layers[1].units == 6 && cfg.layers[1].activation == IPM_ACT_SIGMOID);
    CHECK(cfg.layers[2].units == 4 && cfg.layers[2].activation == IPM_ACT_LINEAR);
    CHECK(cfg.layers[3].units == 3 && cfg.layers[3].activation == IPM_ACT_SOFTMAX);
    CHECK(cfg.init == IPM_INIT_TRUNCATED_NORMAL && cfg.init_stddev == 0.1);
    CHECK(cfg.epochs == 20);
    CHECK(cfg.batch_size == 64);
    CHECK(cfg.optimizer == IPM_OPT_MOMENTUM);
    CHECK(cfg.learning_rate == 2.5e-3);
    CHECK(cfg.momentum == 0.0);
    CHECK(cfg.loss == IPM_LOSS_MSE);
    CHECK(cfg.batches_per_epoch == 1);
    /* Stored sorted and unique. */
    CHECK(cfg.info_epochs.rule == IPM_EPOCHS_LIST && cfg.info_epochs.n_list == 5);
    static const int list[] = {0, 1, 2, 5, 10};
    for (int i = 0; i < 5 && i < cfg.info_epochs.n_list; i++)
        CHECK(cfg.info_epochs.list[i] == list[i]);
    CHECK(cfg.bins == 65535);
    CHECK(cfg.range_lo == -0.5 && cfg.range_hi == 2.0);
    CHECK(cfg.estimators == (IPM_EST_SIMPLE | IPM_EST_SAMPLED));
    CHECK(cfg.on == IPM_ON_ALL);
    CHECK(cfg.activation_epochs.rule == IPM_EPOCHS_EVERY && cfg.activation_epochs.param == 4);
    ipm_config_free(&cfg);

    /* Synonyms and other spellings. */
    rc = load_text(&cfg,
                   "[data]\ntrain_fraction = 0.5\n[network]\ninit = glorot\n[information]\n"
                   "estimators = all\non = test\nepochs = log:7\n[output]\nactivations = all\n",
                   NULL, 0, err);
    CHECK(rc == 0);
    CHECK(cfg.init == IPM_INIT_XAVIER);
    CHECK(cfg.estimators == (IPM_EST_SIMPLE | IPM_EST_POOLED | IPM_EST_SAMPLED));
    CHECK(cfg.on == IPM_ON_TEST);
    CHECK(cfg.info_epochs.rule == IPM_EPOCHS_LOG && cfg.info_epochs.param == 7);
    CHECK(cfg.activation_epochs.rule == IPM_EPOCHS_ALL);
    ipm_config_free(&cfg);

    /* kde and miller_madow join `all` by name; the noise variance. */
    rc = load_text(&cfg,
                   "[information]\nestimators = all, kde, miller_madow\n"
                   "kde_variance = 0.1\n",
                   NULL, 0, err);
    CHECK(rc == 0);
    CHECK(cfg.estimators == (IPM_EST_BINNED | IPM_EST_KDE | IPM_EST_MILLER_MADOW));
    CHECK(cfg.kde_variance == 0.1);
    ipm_config_free(&cfg);
    rc = load_text(&cfg, "[information]\nestimators = kde\n", NULL, 0, err);
    CHECK(rc == 0 && cfg.estimators == IPM_EST_KDE);
    ipm_config_free(&cfg);

    /* A section may open twice, its keys adding up. */
    rc = load_text(&cfg, "[training]\nepochs = 5\n[run]\nseed = 3\n[training]\nbatch_size = 7\n",
                   NULL, 0, err);
    CHECK(rc == 0 && cfg.epochs == 5 && cfg.seed == 3 && cfg.batch_size == 7);
    ipm_config_free(&cfg);
}

static void test_errors(void)
{
    /* A key given twice names both lines, even in a section opened twice,
     * and whether or not the two values agree. */
    expect_error("[training]\nepochs = 5\nepochs = 9\n", "t.ini:3: [training] epochs",
                 "second time (first at line 2)");
    expect_error("[run]\nseed = 1\n[training]\nepochs = 5\n[run]\n\nseed = 1\n",
                 "t.ini:7: [run] seed", "second time (first at line 2)");
    expect_error("[network]\nlayers = dense:4:tanh,\n    dense:2:softmax\nlayers = dense:3:tanh\n",
                 "t.ini:4: [network] layers", "second time (first at line 2)");
    /* Unknown key and unknown section, with the line of the key. */
    expect_error("[run]\nseed = 1\n\n[training]\nepochz = 3\n", "t.ini:5: [training] epochz",
                 "unknown key");
    /* named at its header, the line to mend */
    expect_error("[run]\nseed = 1\n[trainer]\nepochs = 3\n", "t.ini:3: unknown section [trainer]",
                 "(sections: run, data,");
    expect_error("seed = 1\n", "t.ini:1: seed", "outside any [section]");

    /* Bad numbers quote the value. */
    expect_error("[training]\nepochs = abc\n", "t.ini:2: [training] epochs", "'abc'");
    expect_error("[training]\n\nbatch_size = 1.5\n", "t.ini:3: [training] batch_size", "'1.5'");
    expect_error("[run]\nthreads = 10x\n", "t.ini:2: [run] threads", "'10x'");
    expect_error("[run]\ncheckpoint_every = -1\n", "t.ini:2: [run] checkpoint_every", "'-1'");
    expect_error("[run]\nseed = -1\n", "t.ini:2: [run] seed", "'-1'");
    expect_error("[run]\nseed = 18446744073709551616\n", "t.ini:2: [run] seed", "out of range");
    expect_error("[training]\nepochs = 99999999999\n", "t.ini:2: [training] epochs",
                 "out of range");
    expect_error("[training]\nlearning_rate = nan\n", "t.ini:2: [training] learning_rate", "'nan'");

    /* Out of range. */
    expect_error("[information]\nbins = 1\n", "t.ini:2: [information] bins", "out of range");
    /* too large for a key without an upper bound: the bound it passed is named */
    expect_error("[run]\nreplicas = 4294967296\n", "t.ini:2: [run] replicas",
                 "out of range (must be at most 2147483647)");
    expect_error("[run]\nreplicas = -1\n", "t.ini:2: [run] replicas", "(must be >= 0)");
    expect_error("[information]\nbins = 65536\n", "t.ini:2: [information] bins", "out of range");
    expect_error("[data]\ntrain_fraction = 0\n", "t.ini:2: [data] train_fraction", "out of range");
    expect_error("[data]\ntrain_fraction = 1.01\n", "t.ini:2: [data] train_fraction",
                 "out of range");
    expect_error("[training]\nlearning_rate = -1\n", "t.ini:2: [training] learning_rate",
                 "out of range");
    expect_error("[training]\nmomentum = 1\n", "t.ini:2: [training] momentum", "out of range");
    expect_error("[run]\nreplicas = -2\n", "t.ini:2: [run] replicas", "out of range");
    expect_error("[information]\nrange = 1, -1\n", "t.ini:2: [information] range",
                 "lo must be below hi");
    expect_error("[information]\nrange = 1\n", "t.ini:2: [information] range", "lo, hi");
    expect_error("[network]\ninit = truncated_normal:0\n", "t.ini:2: [network] init", "> 0");
    expect_error("[network]\ninit = truncated_normal\n", "t.ini:2: [network] init",
                 "standard deviation");
    expect_error("[network]\ninit = truncated_normal:fan_mid\n", "t.ini:2: [network] init",
                 "fan_mid");

    /* Words. */
    expect_error("[training]\noptimizer = rmsprop\n", "t.ini:2: [training] optimizer", "'rmsprop'");
    expect_error("[data]\nsource = mnist\n", "t.ini:2: [data] source", "'mnist'");
    expect_error("[information]\nestimators = simple, fancy\n", "t.ini:2: [information] estimators",
                 "'fancy'");
    expect_error("[information]\nestimators = kde, miller_madow\n",
                 "t.ini:2: [information] estimators", "list simple, pooled or sampled with it");
    expect_error("[information]\nkde_variance = 0\n", "t.ini:2: [information] kde_variance",
                 "out of range");
    expect_error("[information]\nestimators = all, kde\n[stopping]\ncriterion = mi\n"
                 "estimator = kde\n",
                 "t.ini:5: [stopping] estimator", "'kde'");
    expect_error("[information]\nepochs = sometimes\n", "t.ini:2: [information] epochs",
                 "'sometimes'");
    expect_error("[information]\nepochs = every:0\n", "t.ini:2: [information] epochs",
                 "out of range");
    expect_error("[information]\nepochs = none\n", "t.ini:2: [information] epochs", "'none'");
    expect_error("[output]\nactivations = 1, -3\n", "t.ini:2: [output] activations", "'-3'");

    /* Layer specs name the item. */
    expect_error("[network]\nlayers = dense:4:tanh, lstm:3:relu\n",
                 "t.ini:2: [network] layers: item 2 'lstm:3:relu'", "unknown layer kind");
    expect_error("[network]\nlayers = dense:4:tanh, conv:3:relu\n",
                 "t.ini:2: [network] layers: item 2 'conv:3:relu'", "must be KHxKW");
    expect_error("[network]\nlayers = conv:3:5x5:relu, maxpool:2\n", "item 2 'maxpool:2'",
                 "window '2' must be KHxKW");
    expect_error("[network]\nlayers = conv:3:5x5:softmax, dense:2:softmax\n",
                 "item 1 'conv:3:5x5:softmax'", "softmax is only allowed on the last layer");
    expect_error("[network]\nlayers = dense:4:tanh, maxpool:2x2\n", "[network] layers",
                 "the last layer must be dense");
    expect_error("[information]\nlayers = 1, 9\n", "t.ini:2: [information] layers",
                 "layer 9 does not exist");
    expect_error("[stopping]\ncriterion = mi\nscope = replica\n", "[stopping] scope",
                 "set [stopping] estimator = simple");
    expect_error("[information]\nestimators = simple\n[stopping]\ncriterion = mi\n",
                 "[stopping] estimator", "does not compute it");
    expect_error("[information]\nlayers = 1\n[stopping]\ncriterion = mi\n", "[stopping] layer",
                 "layer 6 is not measured");
    expect_error("[data]\nsource = idx\nimages = a.idx\n", "[data] source",
                 "needs [data] images and labels");
    expect_error("[data]\nsource = idx\nimages = a\nlabels = b\ntest_images = c\n",
                 "t.ini:5: [data] test_images", "go together");
    expect_error("[network]\nlayers = dense:4:tanh, dense:x:tanh, dense:2:softmax\n",
                 "t.ini:2: [network] layers: item 2 'dense:x:tanh'",
                 "units must be an integer from 1 to 16777216");
    expect_error("[network]\nlayers = dense::tanh\n", "t.ini:2: [network] layers: item 1",
                 "units must be an integer from 1 to 16777216");
    expect_error("[network]\nlayers = dense:0:tanh\n", "t.ini:2: [network] layers: item 1",
                 "units must be an integer from 1 to 16777216");
    expect_error("[network]\nlayers = dense:tanh\n", "t.ini:2: [network] layers: item 1",
                 "expected dense:UNITS:ACTIVATION");
    expect_error("[network]\nlayers = dense:4:tanhh\n", "t.ini:2: [network] layers: item 1",
                 "unknown activation 'tanhh'");
    expect_error("[network]\nlayers = dense:4:softmax, dense:2:tanh\n",
                 "t.ini:2: [network] layers: item 1 'dense:4:softmax'",
                 "only allowed on the last layer");
    expect_error("[network]\nlayers = dense:4:tanh,\n", "t.ini:2: [network] layers",
                 "item 2 is empty");
    /* A trailing comma is named as such, not as a misplaced softmax. */
    expect_error("[network]\nlayers = dense:4:tanh, dense:2:softmax,\n",
                 "t.ini:2: [network] layers", "item 3 is empty (a comma at the end?)");
    expect_error("[network]\nlayers = conv:100000:3x3, dense:2:softmax\n",
                 "item 1 'conv:100000:3x3'", "channels must be an integer from 1 to 65536");

    /* A NUL byte in a line is refused, not read as the end of the value. */
    {
        static const char nul_text[] = "[training]\nbatch_size = 25\0 6\n";
        FILE *f = fopen(path, "wb");
        CHECK(f && fwrite(nul_text, 1, sizeof nul_text - 1, f) == sizeof nul_text - 1);
        if (f)
            fclose(f);
        ipm_config cfg;
        char err[IPM_ERRLEN] = "";
        CHECK(ipm_config_load(&cfg, path, NULL, 0, err) == -1);
        CHECK(strstr(err, "t.ini:2:") != NULL && strstr(err, "NUL byte") != NULL);
        ipm_config_free(&cfg);
    }

    /* Empty values, syntax errors, long lines, indented keys. */
    expect_error("[run]\noutput =\n", "t.ini:2: [run] output", "empty value");
    expect_error("[run]\nseed = 1\nthis is not a key\n", "t.ini:3:", "syntax error");
    expect_error("[run\nseed = 1\n", "t.ini:1:", "syntax error");
    char long_file[512];
    snprintf(long_file, sizeof long_file,
             "[run]\nseed = 1\noutput = %0250d\n[training]\n"
             "epochz = 1\n",
             7);
    expect_error(long_file, "t.ini:3:", "line too long");
    /* The long line does not shift later line numbers. */
    snprintf(long_file, sizeof long_file, "[run]\n; %0250d\n[training]\nepochz = 1\n", 7);
    expect_error(long_file, "t.ini:2:", "line too long");
    expect_error("[run]\n  seed = 1\n  threads = 2\n", "t.ini:3: [run] seed",
                 "indented line 'threads = 2'");
    /* The first error in line order wins, whatever kind it is. */
    expect_error("[run]\nthreads = 0\nnonsense\n", "t.ini:2: [run] threads", NULL);
    expect_error("[run]\nnonsense\nthreads = 0\n", "t.ini:2:", "syntax error");

    /* Edges that float32 binning would flush to zero (subnormal). */
    expect_error("[information]\nrange = 0, 1e-40\n", "t.ini:2: [information] range",
                 "edge 2 is 3.4486e-42, below float32's smallest normal number");
    expect_error("[information]\nbinning = width\nwidth = 1e-39\n", "t.ini:3: [information] width",
                 "below float32's smallest normal number");

    /* Cross-key checks name the file and the key. */
    expect_error("[information]\non = all\n", "t.ini:2: [information] on", "needs a test set");
    expect_error("[data]\nsource = netcdf\n", "t.ini:2: [data] path",
                 "required when source = netcdf");
    expect_error("[training]\nepochs = 10\n[information]\nepochs = 0, 5, 11\n",
                 "t.ini:4: [information] epochs", "epoch 11 is beyond [training] epochs = 10");
    expect_error("[output]\nactivations = 2000\n", "t.ini:2: [output] activations",
                 "epoch 2000 is beyond [training] epochs = 1000");

    /* A missing file. */
    ipm_config cfg;
    char err[IPM_ERRLEN], missing[160];
    snprintf(missing, sizeof missing, "%s/absent.ini", dir);
    CHECK(ipm_config_load(&cfg, missing, NULL, 0, err) == -1);
    CHECK(strstr(err, "absent.ini: cannot open: No such file or directory") != NULL);
    ipm_config_free(&cfg);
    CHECK(ipm_config_load(&cfg, dir, NULL, 0, err) == -1); /* a directory */
    CHECK(strstr(err, "cannot read") != NULL);
    ipm_config_free(&cfg);
}

static void test_overrides(void)
{
    ipm_config cfg;
    char err[IPM_ERRLEN];
    const char *set[] = {"training.epochs=7", "run.replicas = 3", "network.layers=dense:3:relu",
                         "training.epochs=8"};
    int rc = load_text(&cfg, "[training]\nepochs = 50\nbatch_size = 4\n", set, 4, err);
    CHECK(rc == 0);
    CHECK(cfg.epochs == 8); /* overrides apply in order */
    CHECK(cfg.replicas == 3);
    CHECK(cfg.batch_size == 4);
    CHECK(cfg.n_layers == 1 && cfg.layers[0].units == 3);
    ipm_config_free(&cfg);

    /* No file at all: defaults and overrides. */
    const char *one[] = {"information.bins=12"};
    CHECK(ipm_config_load(&cfg, NULL, one, 1, err) == 0 && cfg.bins == 12);
    ipm_config_free(&cfg);

    const char *bad_key[] = {"training.epochz=7"};
    expect_error_with("", bad_key, 1, "--set training.epochz=7: [training] epochz", "unknown key");
    const char *bad_value[] = {"information.bins=1"};
    expect_error_with("", bad_value, 1, "--set information.bins=1: [information] bins",
                      "out of range");
    const char *no_dot[] = {"epochs=7"};
    expect_error_with("", no_dot, 1, "--set epochs=7", "expected section.key=value");
    const char *no_eq[] = {"training.epochs"};
    expect_error_with("", no_eq, 1, "--set training.epochs", "expected section.key=value");
    /* A cross check made to fail by an override names the override. */
    const char *netcdf[] = {"data.source=netcdf"};
    expect_error_with("", netcdf, 1, "--set data.source=netcdf: [data] path", "required");
    const char *fewer[] = {"training.epochs=3"};
    expect_error_with("[information]\nepochs = 0, 4\n", fewer, 1, "t.ini:2: [information] epochs",
                      "beyond [training] epochs = 3");

    /* Errors found after loading (data, shapes) name where the key was set. */
    const char *data_path[] = {"data.path=other.nc"};
    CHECK(load_text(&cfg, "[data]\nsource = netcdf\npath = x.nc\n[network]\ninit = he\n", data_path,
                    1, err) == 0);
    CHECK(ipm_config_fail(&cfg, "network", "init", err, ": odd %d", 7) == -1);
    CHECK(strstr(err, "t.ini:5: [network] init: odd 7") != NULL);
    ipm_config_fail(&cfg, "data", "path", err, ": cannot open");
    CHECK(strstr(err, "--set data.path: [data] path: cannot open") != NULL);
    ipm_config_fail(&cfg, "training", "loss", err, " = %s: defaulted", "x");
    CHECK(strstr(err, "t.ini: [training] loss = x: defaulted") != NULL);
    ipm_config_free(&cfg);
}

static void test_continuation_lines(void)
{
    ipm_config cfg;
    char err[IPM_ERRLEN];
    int rc = load_text(&cfg,
                       "[network]\nlayers = dense:8:tanh,\n    dense:4:tanh\n"
                       "  dense:2:softmax\n[information]\nepochs = 0, 1,\n\t2, 30\n",
                       NULL, 0, err);
    CHECK(rc == 0);
    if (rc)
        fprintf(stderr, "  %s\n", err);
    CHECK(cfg.n_layers == 3 && cfg.layers[1].units == 4 && cfg.layers[2].units == 2);
    CHECK(cfg.info_epochs.n_list == 4 && cfg.info_epochs.list[3] == 30);
    ipm_config_free(&cfg);
    /* A bad item on a continuation line is reported at its key's line. */
    expect_error("[run]\nseed = 1\n[network]\nlayers = dense:8:tanh,\n    dense:x:tanh\n",
                 "t.ini:4: [network] layers: item 2 'dense:x:tanh'", "units");
    /* Every item below an empty first line; " ;" comments on continuation
     * lines are comments, as on the key's own line. */
    rc = load_text(&cfg,
                   "[network]\nlayers =\n    dense:3:tanh, ; the hidden layer\n"
                   "    dense:2:softmax ; the output\n",
                   NULL, 0, err);
    CHECK(rc == 0);
    if (rc)
        fprintf(stderr, "  %s\n", err);
    CHECK(cfg.n_layers == 2 && cfg.layers[0].units == 3 && cfg.layers[1].units == 2);
    ipm_config_free(&cfg);
}

/* What inih would pass over in silence: a file with old Mac line ends (one
 * "line" to getline), text after a section header's ']', a section with no
 * keys of its own. */
static void test_silent_text(void)
{
    expect_error("[run]\routput = mine.nc\rseed = 7\r", "t.ini:1:", "carriage return");
    expect_error("[run]\nseed = 1\r \nthreads = 2\n", "t.ini:2:", "carriage return");
    expect_error("[run] seed = 7\n", "t.ini:1:", "text after the section header's ']': 'seed = 7'");
    expect_error("[run]\nseed = 7\n[foo]\n", "t.ini:3:", "unknown section [foo]");
    /* Windows line ends and a comment after the ']' are fine. */
    ipm_config cfg;
    char err[IPM_ERRLEN];
    int rc = load_text(&cfg, "[run] ; the run\r\nseed = 7\r\n[data] # data\r\nsamples = 9\r\n",
                       NULL, 0, err);
    CHECK(rc == 0 && cfg.seed == 7 && cfg.samples == 9);
    if (rc)
        fprintf(stderr, "  %s\n", err);
    ipm_config_free(&cfg);
}

/* Found by fuzz_config: string values the format could not write back. */
static void test_unwritable_strings(void)
{
    /* inih passes ";x" (no space before the ';'), but the formatted
     * "output = ;x" reads back as empty. */
    expect_error("[run]\noutput =;seed.nc\n", "t.ini:2: [run] output", "begins a comment");
    static const char *const set_comment[] = {"run.output=a ;b"};
    expect_error_with("", set_comment, 1, "--set run.output=a ;b", "begins a comment");
    /* A ';' elsewhere is part of the value and survives the round trip. */
    ipm_config cfg, again;
    char err[IPM_ERRLEN];
    CHECK(load_text(&cfg, "[run]\noutput = a;b.nc\n", NULL, 0, err) == 0);
    CHECK(strcmp(cfg.output, "a;b.nc") == 0);
    char *text = ipm_config_format(&cfg);
    CHECK(load_text(&again, text, NULL, 0, err) == 0 && strcmp(again.output, "a;b.nc") == 0);
    free(text);
    ipm_config_free(&cfg);
    ipm_config_free(&again);
    /* A path is not a list: continuation lines would join pieces into one
     * with ", " and could build a line longer than inih reads back. */
    expect_error("[data]\npath = /tmp/a\n  b.nc\n", "t.ini:3: [data] path", "indented line 'b.nc'");
}

/* format -> file -> load -> format gives the same text. */
static void check_round_trip(const ipm_config *cfg)
{
    char *text = ipm_config_format(cfg);
    CHECK(text != NULL);
    if (!text)
        return;
    ipm_config again;
    char err[IPM_ERRLEN];
    int rc = load_text(&again, text, NULL, 0, err);
    CHECK(rc == 0);
    if (rc)
        fprintf(stderr, "  %s\nin\n%s", err, text);
    char *text2 = ipm_config_format(&again);
    CHECK(text2 && strcmp(text, text2) == 0);
    if (text2 && strcmp(text, text2) != 0)
        fprintf(stderr, "first:\n%s\nsecond:\n%s", text, text2);
    CHECK(again.seed == cfg->seed && again.learning_rate == cfg->learning_rate);
    CHECK(again.range_lo == cfg->range_lo && again.range_hi == cfg->range_hi);
    CHECK(again.init == cfg->init);
    CHECK(again.init_stddev == cfg->init_stddev || cfg->init != IPM_INIT_TRUNCATED_NORMAL);
    CHECK(again.n_layers == cfg->n_layers);
    CHECK(again.info_epochs.n_list == cfg->info_epochs.n_list);
    free(text);
    free(text2);
    ipm_config_free(&again);
}

static void test_format(void)
{
    ipm_config cfg;
    ipm_config_defaults(&cfg);
    char *text = ipm_config_format(&cfg);
    CHECK(text != NULL);
    static const char *const lines[] = {
        "\n[run]\nseed = 0\n",
        "\nreplicas = 0\n",
        "# replicas = 0: one replica per MPI rank\n",
        "\noutput = ipmpi.nc\n",
        "\npath = \n",
        "\ncheckpoint = \n",
        "\ncheckpoint_every = 0\n",
        ("\nlayers = dense:10:tanh, dense:7:tanh, dense:5:tanh, dense:4:tanh, dense:3:tanh, "
         "dense:2:softmax\n"),
        "\ninit = xavier\n",
        "\nlearning_rate = 0.001\n",
        "\nmomentum = 0.9\n",
        "\n[information]\nepochs = log:100\n",
        "\nrange = -1, 1\n",
        "\nestimators = simple, pooled, sampled\n",
        "\non = train\n",
        "\n[output]\nactivations = none\n"};
    for (size_t i = 0; text && i < sizeof lines / sizeof *lines; i++)
        if (!strstr(text, lines[i])) {
            fprintf(stderr, "  formatted defaults lack '%s'\n", lines[i]);
            CHECK(strstr(text, lines[i]) != NULL);
        }
    free(text);
    check_round_trip(&cfg);

    /* Every key away from its default, doubles that need 17 digits, and
     * lists long enough to wrap onto continuation lines. */
    char err[IPM_ERRLEN];
    CHECK(load_text(&cfg, full_file, NULL, 0, err) == 0);
    cfg.learning_rate = 0.1 + 0.2; /* 0.30000000000000004 */
    cfg.range_lo = -1.0 / 3.0;
    cfg.n_layers = IPM_MAX_LAYERS;
    for (int i = 0; i < cfg.n_layers; i++)
        cfg.layers[i] = (ipm_layer_spec){.units = 1000 + i, .activation = IPM_ACT_SIGMOID};
    cfg.epochs = 100000;
    free(cfg.info_epochs.list);
    cfg.info_epochs.n_list = 300;
    cfg.info_epochs.list = malloc(300 * sizeof(int));
    for (int i = 0; i < 300; i++)
        cfg.info_epochs.list[i] = 7 * i + 99000 - 2100;
    text = ipm_config_format(&cfg);
    CHECK(text && strstr(text, "\ninit = truncated_normal:0.1\n"));
    CHECK(text && strstr(text, "\nlearning_rate = 0.30000000000000004\n"));
    CHECK(text && strstr(text, "\nseed = 18446744073709551615\n"));
    int longest = 0, current = 0;
    for (const char *p = text; p && *p; p++)
        current = *p == '\n' ? 0 : current + 1, longest = current > longest ? current : longest;
    CHECK(longest < 100);
    free(text);
    check_round_trip(&cfg);

    /* The original code's per-layer stddev has its own spelling. */
    ipm_config_free(&cfg);
    CHECK(load_text(&cfg, "[network]\ninit = truncated_normal:fan_in\n", NULL, 0, err) == 0);
    CHECK(cfg.init == IPM_INIT_TRUNCATED_FAN_IN);
    text = ipm_config_format(&cfg);
    CHECK(text && strstr(text, "\ninit = truncated_normal:fan_in\n"));
    free(text);
    check_round_trip(&cfg);
    ipm_config_free(&cfg);
    CHECK(load_text(&cfg, "[network]\ninit = truncated_normal:fan_out\n", NULL, 0, err) == 0);
    CHECK(cfg.init == IPM_INIT_TRUNCATED_FAN_OUT);
    text = ipm_config_format(&cfg);
    CHECK(text && strstr(text, "\ninit = truncated_normal:fan_out\n"));
    free(text);
    check_round_trip(&cfg);
    ipm_config_free(&cfg);
}

static void check_expansion(const ipm_epoch_spec *spec, int last, const int *expected, int n)
{
    int *epochs, count;
    char err[IPM_ERRLEN];
    CHECK(ipm_epochs_expand(spec, last, &epochs, &count, err) == 0);
    CHECK(count == n);
    int same = count == n;
    for (int i = 0; same && i < n; i++)
        same = epochs[i] == expected[i];
    CHECK(same);
    if (!same) {
        fprintf(stderr, "  rule %d param %d last %d gave", spec->rule, spec->param, last);
        for (int i = 0; i < count; i++)
            fprintf(stderr, " %d", epochs[i]);
        fprintf(stderr, "\n");
    }
    free(epochs);
}

/* Values from numpy 1.24:
 *   pts = np.logspace(np.log2(1), np.log2(last+1), N, base=2, dtype=int)
 *   np.unique(np.append(pts[:-1], last+1)) - 1
 * i.e. the original code's np.unique(np.logspace(...)) - 1 with the endpoint
 * taken as exactly last + 1. (The original expression itself ends at 999
 * for (1000, 50): 2**np.log2(1001) rounds below 1001.) */
static const int log_8000_300[] = {
    0,    1,    2,    3,    4,    5,    6,    7,    8,    9,    10,   11,   12,   13,   14,   15,
    16,   17,   18,   19,   20,   21,   22,   23,   24,   25,   26,   27,   28,   29,   30,   31,
    32,   33,   34,   35,   36,   38,   39,   40,   41,   43,   44,   45,   47,   48,   50,   51,
    53,   55,   56,   58,   60,   62,   64,   66,   68,   70,   72,   74,   77,   79,   81,   84,
    87,   89,   92,   95,   98,   101,  104,  107,  111,  114,  118,  121,  125,  129,  133,  137,
    141,  145,  150,  154,  159,  164,  169,  174,  180,  185,  191,  197,  203,  209,  216,  222,
    229,  236,  243,  251,  259,  266,  275,  283,  292,  301,  310,  319,  329,  339,  350,  360,
    371,  383,  395,  407,  419,  432,  445,  459,  473,  487,  502,  518,  533,  550,  567,  584,
    602,  620,  639,  659,  679,  700,  721,  743,  766,  789,  813,  838,  864,  890,  917,  945,
    974,  1004, 1035, 1066, 1099, 1133, 1167, 1203, 1240, 1277, 1316, 1357, 1398, 1441, 1485, 1530,
    1577, 1625, 1675, 1726, 1779, 1833, 1889, 1947, 2006, 2067, 2130, 2195, 2263, 2332, 2403, 2476,
    2552, 2630, 2710, 2793, 2878, 2966, 3056, 3150, 3246, 3345, 3447, 3552, 3661, 3772, 3888, 4006,
    4129, 4255, 4384, 4518, 4656, 4798, 4945, 5096, 5251, 5412, 5577, 5747, 5922, 6103, 6289, 6481,
    6679, 6883, 7093, 7310, 7533, 7763, 8000};
static const int log_1000_50[] = {0,   1,   2,   3,   4,   5,   6,   7,   8,   9,   11,
                                  13,  15,  18,  21,  24,  28,  32,  38,  44,  50,  58,
                                  67,  78,  90,  103, 119, 138, 159, 183, 211, 243, 280,
                                  323, 372, 428, 493, 568, 654, 754, 868, 1000};
static const int log_10_100[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10};

static void test_epoch_expansion(void)
{
    ipm_epoch_spec spec = {IPM_EPOCHS_LOG, 300, NULL, 0};
    check_expansion(&spec, 8000, log_8000_300, 215);
    spec.param = 50;
    check_expansion(&spec, 1000, log_1000_50, 42);
    spec.param = 100;
    check_expansion(&spec, 10, log_10_100, 11);
    spec.param = 1;
    check_expansion(&spec, 10, (const int[]){10}, 1);
    spec.param = 5;
    check_expansion(&spec, 0, (const int[]){0}, 1);
    /* Dense enough to hit every epoch: computed point by point (3000 is
     * below the shortcut's threshold for last = 300) and by the shortcut
     * (INT_MAX points, which must not allocate or loop per point). */
    int all_301[301];
    for (int e = 0; e <= 300; e++)
        all_301[e] = e;
    spec.param = 3000;
    check_expansion(&spec, 300, all_301, 301);
    spec.param = INT_MAX;
    check_expansion(&spec, 300, all_301, 301);

    ipm_epoch_spec all = {IPM_EPOCHS_ALL, 0, NULL, 0};
    check_expansion(&all, 4, (const int[]){0, 1, 2, 3, 4}, 5);
    ipm_epoch_spec every = {IPM_EPOCHS_EVERY, 3, NULL, 0};
    check_expansion(&every, 10, (const int[]){0, 3, 6, 9, 10}, 5);
    check_expansion(&every, 9, (const int[]){0, 3, 6, 9}, 4);
    check_expansion(&every, 2, (const int[]){0, 2}, 2);

    int values[] = {0, 2, 7, 30};
    ipm_epoch_spec list = {IPM_EPOCHS_LIST, 0, values, 4};
    check_expansion(&list, 10, (const int[]){0, 2, 7}, 3);
    ipm_epoch_spec none = {IPM_EPOCHS_LIST, 0, NULL, 0};
    int *epochs, n;
    char err[IPM_ERRLEN];
    CHECK(ipm_epochs_expand(&none, 10, &epochs, &n, err) == 0 && n == 0);
    free(epochs);
    CHECK(ipm_epochs_expand(&all, -1, &epochs, &n, err) == -1);
    every.param = 0;
    CHECK(ipm_epochs_expand(&every, 5, &epochs, &n, err) == -1);
}

/* Image data, convolutional layers, measured layers and the stopping rule:
 * parsed, and printed back to text that parses to the same values. */
static void test_images_and_stopping(void)
{
    static const char text[] =
        "[data]\nsource = idx\nimages = a.gz\nlabels = b.gz\ntest_images = c\ntest_labels = d\n"
        "subset = 1000\npool = 2\nquantize = 20\nscale = true\n"
        "[network]\nlayers = conv:8:5x3:relu, maxpool:2x2, conv:2:1x1, dense:10:softmax\n"
        "[information]\nrange = adaptive\nlayers = 3, 1, 3\n"
        "[stopping]\ncriterion = mi\nbeta = 0.5\nlayer = 3\nestimator = sampled\n"
        "check_every = 25\ntolerance = 0.01\npatience = 4\n";
    ipm_config cfg;
    char err[IPM_ERRLEN] = "";
    int rc = load_text(&cfg, text, NULL, 0, err);
    CHECK(rc == 0);
    if (rc)
        fprintf(stderr, "  %s\n", err);
    CHECK(cfg.source == IPM_DATA_IDX && strcmp(cfg.images, "a.gz") == 0);
    CHECK(strcmp(cfg.test_labels, "d") == 0 && cfg.subset == 1000 && cfg.pool == 2);
    CHECK(cfg.quantize == 20 && cfg.scale == 1);
    CHECK(cfg.n_layers == 4 && cfg.layers[0].kind == IPM_LAYER_CONV && cfg.layers[0].units == 8);
    CHECK(cfg.layers[0].kernel_h == 5 && cfg.layers[0].kernel_w == 3);
    CHECK(cfg.layers[0].activation == IPM_ACT_RELU);
    CHECK(cfg.layers[1].kind == IPM_LAYER_MAXPOOL && cfg.layers[1].kernel_h == 2);
    CHECK(cfg.layers[2].kind == IPM_LAYER_CONV && cfg.layers[2].activation == IPM_ACT_LINEAR);
    CHECK(cfg.layers[3].kind == IPM_LAYER_DENSE);
    CHECK(cfg.range_adaptive == 1);
    CHECK(cfg.n_info_layers == 2 && cfg.info_layers[0] == 1 && cfg.info_layers[1] == 3);
    CHECK(ipm_config_measures_layer(&cfg, 0) && !ipm_config_measures_layer(&cfg, 1));
    CHECK(cfg.stop_criterion == IPM_STOP_MI && cfg.stop_beta == 0.5);
    CHECK(ipm_config_stop_layer(&cfg) == 2 && cfg.stop_estimator == IPM_EST_SAMPLED);
    CHECK(cfg.stop_check_every == 25 && cfg.stop_tolerance == 0.01 && cfg.stop_patience == 4);
    CHECK(cfg.stop_scope == IPM_SCOPE_ENSEMBLE);

    char *formatted = ipm_config_format(&cfg);
    CHECK(formatted &&
          strstr(formatted, "layers = conv:8:5x3:relu, maxpool:2x2, conv:2:1x1:linear"));
    CHECK(formatted && strstr(formatted, "range = adaptive\n"));
    CHECK(formatted && strstr(formatted, "layers = 1, 3\n"));
    ipm_config again;
    rc = formatted ? load_text(&again, formatted, NULL, 0, err) : -1;
    CHECK(rc == 0);
    if (rc == 0) {
        char *twice = ipm_config_format(&again);
        CHECK(twice && strcmp(twice, formatted) == 0);
        free(twice);
        ipm_config_free(&again);
    }
    free(formatted);
    ipm_config_free(&cfg);

    /* Default measured layers: all but maxpool; range = lo, hi over an
     * adaptive range turns adaptive off. */
    const char *fixed[] = {"information.range=0, 2"};
    rc = load_text(&cfg,
                   "[network]\nlayers = conv:1:4x4:relu, maxpool:3x3, dense:10:softmax\n"
                   "[information]\nrange = adaptive\n",
                   fixed, 1, err);
    CHECK(rc == 0);
    CHECK(ipm_config_measures_layer(&cfg, 0) && !ipm_config_measures_layer(&cfg, 1));
    CHECK(ipm_config_measures_layer(&cfg, 2) && ipm_config_stop_layer(&cfg) == 2);
    CHECK(cfg.range_adaptive == 0 && cfg.range_lo == 0 && cfg.range_hi == 2);
    ipm_config_free(&cfg);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/test_config.XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 2;
    }
    snprintf(path, sizeof path, "%s/t.ini", dir);
    test_defaults();
    test_full_file();
    test_errors();
    test_overrides();
    test_continuation_lines();
    test_silent_text();
    test_unwritable_strings();
    test_format();
    test_epoch_expansion();
    test_images_and_stopping();
    unlink(path);
    rmdir(dir);
    return check_report("test_config");
}

/* ipmpi: the command line. Reads like the table of contents of a run:
 * arguments -> config -> (check | collective run) -> exit status. */
#include <mpi.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ipmpi/app/cli.h"
#include "ipmpi/app/plan.h"
#include "ipmpi/app/resume.h"
#include "ipmpi/app/run.h"
#include "ipmpi/base/error.h"
#include "ipmpi/io/checkpoint.h"
#include "ipmpi/io/config.h"
#include "ipmpi/io/lock.h"
#include "ipmpi/io/output.h"
#include "ipmpi/parallel/comm.h"
#include "ipmpi/version.h"

/* One exit status per kind of failure (enum ipm_error_kind), the same under
 * --check and in a run; sysexits' numbers where one fits. */
enum {
    EXIT_RUN_FAILED = 1, /* IPM_ERR_FAILED */
    EXIT_USAGE = 2,      /* IPM_ERR_INPUT: command line, config, data */
    EXIT_REFUSED = 73,   /* IPM_ERR_REFUSED: EX_CANTCREAT, output or checkpoint exists or is held */
    EXIT_IO = 74,        /* IPM_ERR_IO: EX_IOERR, writing output or checkpoint failed */
    EXIT_STOPPED = 75,   /* EX_TEMPFAIL: stopped on a signal, resubmit with --restart */
};

/* The status of a failure whose message is err; a message without a kind
 * gets the phase's. */
static int exit_status(const char *err, enum ipm_error_kind phase)
{
    enum ipm_error_kind kind = ipm_error_kind(err);
    switch (kind == IPM_ERR_UNSPECIFIED ? phase : kind) {
    case IPM_ERR_INPUT:
        return EXIT_USAGE;
    case IPM_ERR_REFUSED:
        return EXIT_REFUSED;
    case IPM_ERR_IO:
        return EXIT_IO;
    default:
        return EXIT_RUN_FAILED;
    }
}

/* The one piece of global state: a signal handler can reach nothing else.
 * The run polls it at every epoch boundary. */
static volatile sig_atomic_t stop_signal;

static void on_stop_signal(int sig)
{
    stop_signal = sig;
}

/* SIGUSR1 (Slurm's --signal, forwarded by mpirun), SIGTERM (PBS walltime,
 * scancel), SIGINT, SIGHUP (the terminal or ssh session closed) and
 * SIGPIPE (stdout's reader went away, as in `ipmpi ... | head`; mpirun
 * turns that into SIGTERM for its ranks) all mean: checkpoint at the next
 * epoch and stop.
 * Installed before MPI_Init, so that no signal finds the default action
 * (which would kill the rank without a checkpoint); Open MPI keeps handlers
 * it finds installed. A signal during setup is acted on at the first epoch
 * boundary, after epoch 0, with a checkpoint of it. */
static void install_stop_handlers(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    const int signals[] = {SIGUSR1, SIGTERM, SIGINT, SIGHUP, SIGPIPE};
    for (size_t i = 0; i < sizeof signals / sizeof *signals; i++)
        sigaction(signals[i], &sa, NULL);
}

static const char usage_text[] =
    "usage: ipmpi [--check] [--restart | --overwrite] [--set SECTION.KEY=VALUE]... CONFIG.ini\n"
    "       mpirun -np P ipmpi CONFIG.ini\n"
    "\n"
    "Trains an ensemble of networks (one replica per MPI rank, replica r on rank r mod P)\n"
    "and writes each layer's information-plane coordinates I(X;T), I(T;Y) at the logged\n"
    "epochs to a NetCDF file.\n"
    "\n"
    "options:\n"
    "  --check                validate CONFIG and its data set, print the effective config\n"
    "                         (every key, defaults included) and exit; with --restart also\n"
    "                         the checkpoint the run would continue from\n"
    "  --restart              continue from the checkpoint ([run] checkpoint) of an earlier\n"
    "                         run of the same config, appending to its output\n"
    "  --overwrite            start afresh even where the output or checkpoint exists\n"
    "                         (without it or --restart, an existing one is refused)\n"
    "  --set SECTION.KEY=V    override one key of CONFIG (repeatable), e.g.\n"
    "                         --set run.replicas=32 --set training.epochs=100\n"
    "  --help                 this text\n"
    "  --version              the version\n"
    "\n"
    "On SIGUSR1, SIGTERM, SIGINT, SIGHUP or SIGPIPE the run writes its checkpoint at the\n"
    "next epoch and stops with status 75; a checkpoint is also written every [run]\n"
    "checkpoint_every epochs and at the end.\n"
    "\n"
    "exit status:\n"
    "   0  done\n"
    "   1  the run failed (divergence, memory, a lost rank; the message is on stderr)\n"
    "   2  bad command line, config or data (the same status under --check)\n"
    "  73  refused: the output or checkpoint exists (see --restart, --overwrite) or\n"
    "      another run holds it; nothing was written\n"
    "  74  writing the output or checkpoint failed (e.g. disk full); what was written\n"
    "      before is kept whole\n"
    "  75  stopped on a signal after writing the checkpoint (resubmit with --restart)\n";

static void print_data_and_network(const ipm_plan *plan)
{
    const ipm_dataset *train = &plan->data[IPM_PLANE_TRAIN], *test = &plan->data[IPM_PLANE_TEST];
    const ipm_net *net = &plan->shape;
    char shape[64] = "";
    if (train->height)
        snprintf(shape, sizeof shape, " = %dx%dx%d images", train->height, train->width,
                 train->channels);
    printf("# data: %d training samples (%d distinct x, %d classes, %d features%s), "
           "%d test samples\n",
           train->n, train->n_x, train->n_classes, train->dim, shape, test->n);
    printf("# network: %zu parameters; layer outputs", net->n_params);
    for (int l = 0; l < net->n_layers; l++) {
        ipm_shape s = net->layer[l].out_shape;
        if (s.height)
            printf(" %dx%dx%d", s.height, s.width, s.channels);
        else
            printf(" %d", net->layer[l].out);
    }
    printf("\n");
}

/* What a run finds only when it starts (status 73 then), said as a note
 * on stderr (stdout is the effective config, which jobs keep and compare):
 * an earlier run's files where this run would write. */
static void note_existing(const ipm_plan *plan)
{
    const char *paths[] = {plan->cfg->output, plan->checkpoint};
    struct stat st;
    for (int k = 0; k < 2; k++)
        if (stat(paths[k], &st) == 0)
            fprintf(stderr,
                    "ipmpi: note: %s exists: a run of this config is refused (status 73) "
                    "without --restart (continue it) or --overwrite (replace it)\n",
                    paths[k]);
}

/* --check --restart: the checkpoint the run would continue from (falling
 * back to PATH.prev as the run does) must be of this config, keys a
 * restart may change aside; read as the run reads it. */
static int check_restart(const ipm_plan *plan, char *err)
{
    int n_replicas = 0;
    ipm_checkpoint ck;
    memset(&ck, 0, sizeof ck);
    /* replicas = 0 takes the checkpoint's count, as the run does */
    int rc =
        ipm_checkpoint_replicas(plan->checkpoint, &n_replicas, err) ||
        ipm_checkpoint_load(plan->checkpoint, plan->cfg,
                            plan->cfg->replicas > 0 ? plan->cfg->replicas : n_replicas, &ck, err) ||
        ipm_resume_check_epochs(plan->cfg, plan->checkpoint, ck.epoch, err);
    if (rc == 0)
        fprintf(stderr,
                "ipmpi: note: --restart continues %s from %s after epoch %d (%d replicas)\n",
                plan->cfg->output, plan->checkpoint, ck.epoch, ck.n_replicas);
    ipm_checkpoint_free(&ck);
    if (rc == 0)
        rc = ipm_output_present(plan->cfg->output, err);
    if (rc)
        ipm_error_default_kind(err, IPM_ERR_INPUT); /* no checkpoint, or not this config's */
    return rc ? -1 : 0;
}

/* --check builds the run's own plan (data, shapes, schedule, bounds, paths),
 * so a config that would fail at start fails here, with the same status. */
static int check_config(const ipm_config *cfg, int restart, char *err)
{
    ipm_plan plan;
    int rc = ipm_plan_make(&plan, cfg, 0, 1, 0, err);
    if (rc == 0) /* a live run on these files: 73, as the run would be refused */
        rc = ipm_lock_probe(cfg->output, err) || ipm_lock_probe(plan.checkpoint, err) ? -1 : 0;
    if (rc == 0 && restart)
        rc = check_restart(&plan, err);
    if (rc == 0) {
        printf("%s", plan.config_text);
        print_data_and_network(&plan);
        if (!restart)
            note_existing(&plan);
    }
    ipm_plan_free(&plan);
    return rc;
}

static int run_collective(const ipm_cli *c, int *argc, char ***argv)
{
    char err[IPM_ERRLEN] = "";
    ipm_config cfg;
    memset(&cfg, 0, sizeof cfg);
    install_stop_handlers();
    if (ipm_comm_init(argc, argv) != MPI_SUCCESS) {
        fprintf(stderr, "ipmpi: MPI_Init failed\n");
        return exit_status("MPI_Init failed", IPM_ERR_FAILED);
    }
    int rank = 0;
    setvbuf(stdout, NULL, _IOFBF, (size_t)1 << 16); /* flushed by report.h's rules */
    ipm_run_options opt = {.restart = c->restart, .overwrite = c->overwrite, .stop = &stop_signal};
    int status = 0, rc;
    if (ipm_comm_prepare(MPI_COMM_WORLD, err) ||
        ipm_comm_rank_size(MPI_COMM_WORLD, &rank, NULL, err))
        status = exit_status(err, IPM_ERR_FAILED);
    else if (ipm_agree(ipm_config_load(&cfg, c->config_path, c->overrides, c->n_overrides, err),
                       err, MPI_COMM_WORLD))
        status = exit_status(err, IPM_ERR_INPUT);
    else if ((rc = ipm_run(&cfg, &opt, MPI_COMM_WORLD, err)) != 0)
        status = rc == IPM_RUN_STOPPED ? EXIT_STOPPED : exit_status(err, IPM_ERR_FAILED);
    fflush(stdout); /* the progress before the error, in order */
    if (status && status != EXIT_STOPPED && rank == 0)
        fprintf(stderr, "ipmpi: %s\n", err);
    ipm_config_free(&cfg);
    if (MPI_Finalize() != MPI_SUCCESS && status == 0) {
        fprintf(stderr, "ipmpi: MPI_Finalize failed after the run had finished\n");
        status = exit_status("MPI_Finalize failed", IPM_ERR_FAILED);
    }
    return status;
}

int main(int argc, char **argv)
{
    char err[IPM_ERRLEN] = "";
    ipm_cli c;
    int status = 0;
    if (ipm_cli_parse(argc, argv, &c, err)) {
        fprintf(stderr, "ipmpi: %s\n", err);
        status = EXIT_USAGE;
    } else if (c.help) {
        fputs(usage_text, stdout);
    } else if (c.version) {
        printf("ipmpi %s\n", IPMPI_VERSION);
    } else if (c.check) {
        ipm_config cfg;
        if (ipm_config_load(&cfg, c.config_path, c.overrides, c.n_overrides, err) ||
            check_config(&cfg, c.restart, err)) {
            fprintf(stderr, "ipmpi: %s\n", err);
            status = exit_status(err, IPM_ERR_INPUT);
        }
        ipm_config_free(&cfg);
    } else {
        status = run_collective(&c, &argc, &argv);
    }
    ipm_cli_free(&c);
    return status;
}

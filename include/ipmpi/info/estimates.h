/* estimates: which information estimates a run computes, on which planes,
 * and where one plane's results of one logged epoch live. A small header of
 * its own so that the config, the estimators, the stopping rule and the
 * output share these names without depending on one another.
 *   simple   per replica, the plug-in estimate on (x, t_r(x), y) over the N samples;
 *   pooled   the same on all N x R (sample, replica) pairs (the extended estimator);
 *   sampled  the seed report's variant: one replica drawn per sample;
 *   kde      Kolchinsky-Tracey upper and lower bounds under Gaussian noise,
 *            replicas pooled (info/kde.h);
 *   miller_madow  the binned estimates with Miller-Madow corrected entropies
 *            (info/miller_madow.h), beside the plug-in ones. */
#ifndef IPMPI_INFO_ESTIMATES_H
#define IPMPI_INFO_ESTIMATES_H

enum ipm_estimator {
    IPM_EST_SIMPLE = 1,
    IPM_EST_POOLED = 2,
    IPM_EST_SAMPLED = 4,
    IPM_EST_KDE = 8,           /* Kolchinsky-Tracey bounds under Gaussian noise (info/kde.h) */
    IPM_EST_MILLER_MADOW = 16, /* Miller-Madow corrected values beside the binned ones */
};
#define IPM_EST_BINNED (IPM_EST_SIMPLE | IPM_EST_POOLED | IPM_EST_SAMPLED)

/* The data sets whose plane is measured (a bit mask) and their indices. */
/* IPM_ON_WHOLE: one plane of the training and test samples together, in the
 * training plane's place. */
enum ipm_plane_set { IPM_ON_TRAIN = 1, IPM_ON_TEST = 2, IPM_ON_ALL = 3, IPM_ON_WHOLE = 4 };
enum ipm_plane { IPM_PLANE_TRAIN, IPM_PLANE_TEST, IPM_N_PLANES };

/* The KDE values of a layer, in this order. */
enum ipm_kde_value {
    IPM_KDE_XT_UPPER,
    IPM_KDE_XT_LOWER,
    IPM_KDE_TY_UPPER,
    IPM_KDE_TY_LOWER,
    IPM_KDE_N_VALUES
};

/* One plane's estimates in bits at one logged epoch. */
typedef struct ipm_estimates {
    int n_replicas, n_layers;
    double *simple_xt, *simple_ty;                           /* n_replicas x n_layers */
    double *pooled_xt, *pooled_ty, *sampled_xt, *sampled_ty; /* n_layers */
    double *simple_xt_mm, *simple_ty_mm;                     /* Miller-Madow: as the plug-in ones */
    double *pooled_xt_mm, *pooled_ty_mm, *sampled_xt_mm, *sampled_ty_mm;
    double *kde[IPM_KDE_N_VALUES]; /* n_layers each */
} ipm_estimates;

#endif

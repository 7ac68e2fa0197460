/* kde: the pairwise-distance bounds of Kolchinsky & Tracey (2017) on a
 * layer's information under additive Gaussian noise, the estimator Saxe et
 * al. (2018) call KDE; the pure numeric part (sums over blocks of pairs and
 * their combination). The dot products that pick the pairs come from the
 * caller (parallel/kde.h: sgemm). All results in bits.
 *
 * Setting. R replicas map the N samples to points t(i,r) in R^d (one
 * layer's activations); the pooled variable is T = t(I,Q) + Z with the
 * (sample, replica) pair (I, Q) uniform over the M = N R pairs and
 * Z ~ N(0, v I_d): a mixture of M Gaussians of weight 1/M each, as the
 * pooled estimator pools replicas. R = 1 is one network, Saxe et al.'s case.
 *
 * Pairwise estimate of the entropy (nats) of m equal-weight Gaussians with
 * centres c_1..c_m and covariance v I_d (Kolchinsky & Tracey 2017, sec. 4):
 *   H_D = d/2 ln(2 pi e v) + ln m - (1/m) sum_i ln sum_j exp(-D(c_i, c_j)).
 * It bounds the mixture entropy from above with the KL divergence,
 * D = ||c_i - c_j||^2 / (2v), and from below with the Bhattacharyya
 * distance, D = ||c_i - c_j||^2 / (8v). These are exactly Saxe et al.'s
 * entropy_estimator_kl (d/2 + d/2 ln(2 pi v) - mean_i[logsumexp_j - ln m])
 * and entropy_estimator_bd (the former at 4v plus d/2 ln(1/4): the same
 * number as H_BD above).
 *
 * The terms, each pair (i, r) weighted 1/M:
 *   H(T)    the mixture of all M points;
 *   H(T|Y)  sum_y p(y) H(T|Y=y), the mixture of the N_y R points of class y,
 *           p(y) = N_y / N (Saxe et al.: class-frequency-weighted entropies
 *           of each class's points);
 *   H(T|X)  (1/N) sum_i H(T|X=x_i), the mixture of sample i's R points. For
 *           R = 1 it is one Gaussian, H = d/2 ln(2 pi e v), Saxe et al.'s
 *           kde_condentropy (noise only); for R > 1 it is a mixture itself,
 *           bounded by the same pairwise estimates over its R points.
 * Samples with the same x have the same points, and the pairwise estimate of
 * a mixture does not change when components are repeated, so conditioning on
 * the sample is conditioning on x.
 *
 * Reported (H_KL, H_BD the estimates with the two distances):
 *   I(X;T) upper = H_KL(T) - H_BD(T|X),  lower = H_BD(T) - H_KL(T|X):
 *     true bounds for any R; for R = 1 both conditional terms are the noise
 *     entropy, so they are Saxe et al.'s upper and lower I(X;T) exactly.
 *     For R > 1 the lower one can fall below 0 where replicas barely differ
 *     (then 0 is the better bound); it is reported as computed.
 *   I(T;Y) upper = H_KL(T) - H_KL(T|Y),  lower = H_BD(T) - H_BD(T|Y):
 *     Saxe et al.'s pairing (the same distance in both terms), kept so that
 *     R = 1 reproduces their numbers; as differences of two bounds they are
 *     estimates rather than guaranteed bounds. The entropies are reported
 *     too, so H_KL(T) - H_BD(T|Y) >= I(T;Y) >= H_BD(T) - H_KL(T|Y) can be
 *     formed.
 *
 * The sums. For every point (i, r) and both distances D:
 *   S_all = sum over all M points (j, s) of exp(-D),
 *   S_y   = the same over the points of sample i's class,
 *   S_x   = the same over sample i's R points (j = i).
 * Each sum holds the point itself, whose term is exp(0) = 1, so S >= 1 and no
 * log-sum-exp shift is needed. With L = (1/M) sum over the M points of ln S
 * and H(Y) = ln N - sum_y p(y) ln N_y (nats):
 *   I(X;T) upper = ln N - L_all^KL + L_x^BD,  lower = ln N - L_all^BD + L_x^KL
 *   I(T;Y) upper = H(Y) - L_all^KL + L_y^KL,  lower = H(Y) - L_all^BD + L_y^BD
 * (the noise entropy and ln R cancel).
 *
 * A term exp(-D) below e^-64 is left out: over at most 2^31 points such
 * terms add up to less than 2^-60 of S, below its rounding.
 *
 * Distances. The caller's dot products (float, from sgemm) only pick the
 * pairs that can add a term: ||a||^2 + ||b||^2 - 2 a.b, widened by more
 * than the float rounding of the products can be, against the distance where
 * the Bhattacharyya term reaches e^-64. Each picked pair's squared distance
 * is then recomputed from the differences in double, and the term kept if it
 * is at least e^-64. Which terms count therefore depends on the exact
 * distances only, not on how BLAS rounds. So the bounds carry no
 * error of the dot-product formula, whose cancellation is large next to the
 * small noise variances used: at v = 1e-3 it costs sgemm 1e-4 bits on tanh
 * layers and 5e-3 on ReLU ones, and even dgemm 7e-11 bits on points 600 away
 * from the origin (measured against differences). Where most pairs are far
 * apart the filter saves nearly all of the exps and differences; where all
 * are close every pair costs an exp and a difference of width terms, about
 * 7 times the far case per pair at width 10 (equal points skip the exp).
 *
 * Order and rank independence. Rows are cut into fixed blocks of
 * IPM_KDE_ROW_BLOCK samples of one replica, numbered replica-major; a row's
 * sums run over the columns in one fixed order (replica, then sample), and
 * ipm_kde_combine adds the blocks' sums of logs in block order. Whoever
 * computes which block, the floating-point operations are the same, so the
 * result is bitwise independent of how blocks are spread over ranks. */
#ifndef IPMPI_INFO_KDE_H
#define IPMPI_INFO_KDE_H

#include <stddef.h>
#include <stdint.h>

#define IPM_KDE_ROW_BLOCK 256 /* samples of one replica per row block */
#define IPM_KDE_COL_BLOCK 512 /* samples of one replica per column block */

/* The six running sums of a point (row), in this order. */
enum ipm_kde_sum {
    IPM_KDE_ALL_KL,
    IPM_KDE_ALL_BD,
    IPM_KDE_Y_KL,
    IPM_KDE_Y_BD,
    IPM_KDE_X_KL,
    IPM_KDE_X_BD,
    IPM_KDE_N_SUMS
};

/* The bounds and the entropy estimates, in bits (entropies are differential
 * entropies of the noisy T, so they can be negative). */
typedef struct ipm_kde_bounds {
    double xt_upper, xt_lower, ty_upper, ty_lower;
    double h_t_kl, h_t_bd, h_t_given_x_kl, h_t_given_x_bd, h_t_given_y_kl, h_t_given_y_bd;
} ipm_kde_bounds;

/* The problem: n samples, n_replicas replicas, width units, noise variance. */
typedef struct ipm_kde_shape {
    int n, n_replicas, width;
    double var;
} ipm_kde_shape;

/* 0 with a valid shape (n, n_replicas, width >= 1, var > 0 and finite,
 * n * n_replicas within int), else -1 with a message. */
int ipm_kde_check_shape(const ipm_kde_shape *s, char *err);

/* Row blocks of the shape: n_replicas * ceil(n / IPM_KDE_ROW_BLOCK). */
int ipm_kde_row_blocks(const ipm_kde_shape *s);

/* Row block g: the samples first .. first + count - 1 of replica *replica. */
void ipm_kde_row_block(const ipm_kde_shape *s, int g, int *replica, int *first, int *count);

/* A block of pairs: rows are samples row_first .. row_first + n_rows - 1 of
 * replica row_replica, columns samples col_first .. of replica col_replica. */
typedef struct ipm_kde_block {
    int row_replica, row_first, n_rows;
    int col_replica, col_first, n_cols;
} ipm_kde_block;

/* norm2[i] = ||a_i||^2 (summed in double) of n points of the given width. */
void ipm_kde_norms(const float *a, int n, int width, float *norm2);

/* A block's points (row-major, width floats each) and their dot products:
 * dots[i * ld + j] = a_i.b_j to the rounding of a float sum of width
 * products (sgemm's), norms from ipm_kde_norms. */
typedef struct ipm_kde_points {
    int width;
    const float *rows, *cols;
    const float *row_norm2, *col_norm2;
    const float *dots;
    size_t ld;
} ipm_kde_points;

/* Adds the block's terms to the rows' sums (n_rows x IPM_KDE_N_SUMS,
 * row-major; zero them before a row's first block); y holds the labels of
 * all n samples. Columns must come in order: replica by replica, and within
 * a replica in increasing sample order. */
void ipm_kde_add_block(const ipm_kde_block *b, const ipm_kde_points *p, const int32_t *y,
                       double var, double *sums);

/* The block's contribution: logs[k] = sum over its rows, in order, of
 * ln sums[row][k]. */
void ipm_kde_row_logs(const double *sums, int n_rows, double logs[IPM_KDE_N_SUMS]);

/* The bounds from every row block's logs (ipm_kde_row_blocks(s) blocks of
 * IPM_KDE_N_SUMS, in block order) and the n labels (>= 0). -1 with a
 * message on a bad shape or label, or without memory. */
int ipm_kde_combine(const ipm_kde_shape *s, const double *block_logs, const int32_t *y,
                    ipm_kde_bounds *out, char *err);

#endif

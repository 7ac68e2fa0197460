/* group: up to IPM_LANES replicas of one all-dense network trained and
 * evaluated side by side, one vector lane per replica, so that one
 * instruction serves them all (the networks of this field are a few units
 * wide: a replica alone leaves most of a vector empty).
 *
 * The members stay ordinary replicas (replica.h): they keep their own
 * parameters, optimizer state, batch stream and order, and can be packed,
 * unpacked or trained alone at any time. A group step gathers each
 * member's batch into its lane, runs the forward and backward pass through
 * the lane kernels (kernels.h) in blocks of rows, hands each member its
 * gradient and lets the member's own optimizer step. Every value goes
 * through the same operations in the same order as when the replica
 * trains alone, so a replica's numbers are bitwise the same whichever
 * replicas share its group or rank (test_group checks this).
 *
 * Members must share the network, batch size, loss and training set
 * (replicas of one config do). An epoch where their batch positions
 * differ, or a net with conv or maxpool layers, trains the members one by
 * one instead: the same result, without the lanes. */
#ifndef IPMPI_LEARN_GROUP_H
#define IPMPI_LEARN_GROUP_H

#include "ipmpi/learn/kernels.h"
#include "ipmpi/learn/replica.h"

typedef struct ipm_group {
    int n; /* members, 1..IPM_LANES */
    ipm_replica *member[IPM_LANES];
    int block_rows;              /* rows per block of the passes */
    size_t n_params;             /* per member */
    float *params, *grads;       /* [parameter][lane], the nets' layout */
    float *x;                    /* block_rows x in_dim lanes */
    int32_t *y;                  /* block_rows x lanes */
    float *act[IPM_MAX_LAYERS];  /* block_rows x out_l lanes */
    float *g[2];                 /* block_rows x widest lanes */
    float *lane_out, *lane_grad; /* one lane's outputs, block_rows x units */
    int32_t *lane_y;
} ipm_group;

/* Whether replicas of this net can train side by side (all layers dense). */
int ipm_group_fits(const ipm_net *net);

/* A group of members[0..n) (1 <= n <= IPM_LANES); they must outlive it. */
int ipm_group_init(ipm_group *g, ipm_replica *const *members, int n, char *err);
void ipm_group_free(ipm_group *g);

/* One epoch of every member whose active[k] is nonzero (active NULL: all),
 * as ipm_replica_train_epoch would train each. */
void ipm_group_train_epoch(ipm_group *g, const ipm_data_view *train, const int *active);

/* Forwards samples [first, first + rows) of d through every member and
 * leaves member k's activations in ws[k] (capacity >= rows), bitwise as
 * ipm_net_forward would. Returns -1 (and forwards nothing) when the block
 * lies outside d or a workspace. */
int ipm_group_forward_block(ipm_group *g, const ipm_data_view *d, int first, int rows,
                            ipm_workspace *const *ws);

/* ipm_group_forward_block, then member k's loss terms added to sum[k]:
 * exactly as ipm_replica_evaluate_block would (a bad block makes every
 * loss_sum NaN). */
void ipm_group_evaluate_block(ipm_group *g, const ipm_data_view *d, int first, int rows,
                              ipm_workspace *const *ws, ipm_eval_totals *sum);

#endif

"""Losses shared by BMN and BSN, as MMAction2 1.2.0 `models/losses/`."""

import jax
import jax.numpy as jnp


def binary_logistic_regression_loss(score, label, threshold=0.5,
                                    ratio_range=(1.05, 21), eps=1e-5):
  """Class-balanced binary log loss over all elements; score, label any shape."""
  pmask = (label > threshold).astype(jnp.float32)
  num_positive = jnp.maximum(jnp.sum(pmask), 1.)
  ratio = jnp.clip(label.size / num_positive, *ratio_range)
  coef_0 = 0.5 * ratio / (ratio - 1)
  coef_1 = 0.5 * ratio
  loss = (coef_1 * pmask * jnp.log(score + eps) +
          coef_0 * (1.0 - pmask) * jnp.log(1.0 - score + eps))
  return -jnp.mean(loss)


def grouped_loss(loss_fn, tensors, rng, group_size):
  """Mean of `loss_fn` over consecutive groups of `group_size` videos.

  MMAction2 computes each GPU's loss on its own videos and averages gradients;
  grouping reproduces that on any device count. loss_fn(*tensors, rng) ->
  (loss, metrics); each tensor is [B, ...] with B a multiple of group_size.
  """
  b = tensors[0].shape[0]
  groups = b // group_size
  split = [t.reshape((groups, group_size) + t.shape[1:]) for t in tensors]
  keys = jax.random.split(rng, groups)
  loss, metrics = jax.vmap(loss_fn)(*split, keys)
  return loss.mean(), jax.tree.map(jnp.mean, metrics)

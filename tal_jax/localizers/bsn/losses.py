"""BSN losses, pure jnp, as MMAction2 1.2.0 (`TEM.loss`, `PEM.loss`).

TEM: the binary logistic regression loss (`losses.binary_logistic_regression_
loss`, positives label > tem_match_threshold, ratio clipped to [1.05, 21])
of each channel over the whole batch; the action term is weighted by 2.

PEM: MMAction2 computes `F.smooth_l1_loss(pred, iou)` with its default mean
reduction *before* applying the sampling weights:
  loss = sum(mean_smooth_l1 * w) / sum(w)
so the weights only matter through sum(w) > 0: the loss is the plain mean
smooth-L1 over all proposals of the batch when any weight is non-zero (there
is a proposal with iou > high threshold, or a medium/low one drawn), and NaN
(0/0) otherwise. Both are reproduced literally, NaN included.
"""

import jax
import jax.numpy as jnp

from tal_jax.ops import losses


def tem_loss(tem_output, label_action, label_start, label_end,
             tem_match_threshold: float = 0.5, loss_weight: float = 2.0):
  """TEM loss.

  Args:
    tem_output: [B, T, 3] float32 (action, start, end) probabilities.
    label_action, label_start, label_end: [B, T] float32 (`tem_targets_batch`).
    tem_match_threshold: positives are labels > this (0.5).
    loss_weight: weight of the action term (2).

  Returns:
    (total, {'loss_action', 'loss_start', 'loss_end', 'loss'}) scalars;
    loss_action is already weighted, total is the sum of the three.
  """
  out = tem_output.astype(jnp.float32)
  bce = losses.binary_logistic_regression_loss
  loss_action = loss_weight * bce(out[..., 0], label_action,
                                  tem_match_threshold)
  loss_start = bce(out[..., 1], label_start, tem_match_threshold)
  loss_end = bce(out[..., 2], label_end, tem_match_threshold)
  total = loss_action + loss_start + loss_end
  return total, {'loss_action': loss_action, 'loss_start': loss_start,
                 'loss_end': loss_end, 'loss': total}


def smooth_l1(x, y, beta: float = 1.0):
  """PyTorch smooth-L1, elementwise: 0.5 d^2 / beta if |d| < beta else
  |d| - beta / 2."""
  d = jnp.abs(x - y)
  return jnp.where(d < beta, 0.5 * d * d / beta, d - 0.5 * beta)


def pem_loss_from_uniforms(pem_output, reference_temporal_iou, valid,
                           u_medium, u_low,
                           pem_high_temporal_iou_threshold: float = 0.6,
                           pem_low_temporal_iou_threshold: float = 0.2,
                           pem_u_ratio_m: float = 1.0,
                           pem_u_ratio_l: float = 2.0):
  """PEM loss with explicit uniform draws (MMAction2's two `torch.rand`).

  Args:
    pem_output: [...] float32 predicted IoU (PEM output).
    reference_temporal_iou: [...] float32 targets (`pem_targets`).
    valid: [...] bool, False on padding (MMAction2 has none: it concatenates
      the videos' proposals; padding here is excluded everywhere).
    u_medium, u_low: [...] uniform [0, 1) draws.
    pem_*: MMAction2's PEM hyperparameters (config defaults).

  Returns:
    (loss, {'temporal_iou_loss', 'loss'}) scalars.
  """
  f32 = jnp.float32
  iou = reference_temporal_iou.astype(f32)
  valid = valid.astype(f32)
  high, low = pem_high_temporal_iou_threshold, pem_low_temporal_iou_threshold
  u_hmask = (iou > high).astype(f32) * valid
  u_mmask = ((iou <= high) & (iou > low)).astype(f32) * valid
  u_lmask = (iou <= low).astype(f32) * valid
  num_h = jnp.sum(u_hmask)
  r_m = jnp.minimum(pem_u_ratio_m * num_h / jnp.sum(u_mmask), 1.0)
  u_smmask = (u_medium * u_mmask > 1. - r_m).astype(f32)
  r_l = jnp.minimum(pem_u_ratio_l * num_h / jnp.sum(u_lmask), 1.0)
  u_slmask = (u_low * u_lmask > 1. - r_l).astype(f32)
  weights = u_hmask + u_smmask + u_slmask
  elementwise = smooth_l1(pem_output.astype(f32), iou) * valid
  mean = jnp.sum(elementwise) / jnp.sum(valid)
  loss = jnp.sum(mean * weights) / jnp.sum(weights)
  return loss, {'temporal_iou_loss': loss, 'loss': loss}


def pem_loss(pem_output, reference_temporal_iou, valid, rng, **kwargs):
  """PEM loss; the sub-sampling draws come from the JAX key `rng`.

  Shapes and keyword arguments as `pem_loss_from_uniforms`.
  """
  k_medium, k_low = jax.random.split(rng)
  shape = reference_temporal_iou.shape
  return pem_loss_from_uniforms(
      pem_output, reference_temporal_iou, valid,
      jax.random.uniform(k_medium, shape), jax.random.uniform(k_low, shape),
      **kwargs)

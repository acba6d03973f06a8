"""Pure jnp losses, as MMAction2 1.2.0 `models/losses/bmn_loss.py`.

`bmn_loss` draws the two uniform tensors of the pem_reg sub-sampling from a JAX
key; `bmn_loss_from_uniforms` takes them explicitly (tests replay the draws
MMAction2's `torch.rand_like` made). The formulas are written literally as
MMAction2's, including its edge behaviour: when there are more high-IoU cells
than medium (low) cells, r > 1 and *every* cell of the batch, valid or not,
passes `u * mask > 1 - r`, so the weights can reach 3 and the loss is
0.5 * sum((w*p - w*g)^2) / sum(w).
"""

import jax
import jax.numpy as jnp

from tal_jax.ops import losses


def boundary_loss(pred_start, pred_end, gt_start, gt_end):
  """Temporal evaluation loss; all [B, T]."""
  return (losses.binary_logistic_regression_loss(pred_start, gt_start) +
          losses.binary_logistic_regression_loss(pred_end, gt_end))


def pem_reg_loss(pred_score, gt_iou_map, mask, u_medium, u_low,
                 high_temporal_iou_threshold=0.7,
                 low_temporal_iou_threshold=0.3):
  """Proposal regression loss with random sub-sampling of medium/low cells.

  Args:
    pred_score: [B, T, T] regression map.
    gt_iou_map: [B, T, T] IoU target already multiplied by `mask`.
    mask: [T, T] valid cells (`boundary_matching.bm_valid_mask`).
    u_medium, u_low: [B, T, T] uniform [0, 1) draws.
  """
  f32 = jnp.float32
  u_hmask = (gt_iou_map > high_temporal_iou_threshold).astype(f32)
  u_mmask = ((gt_iou_map <= high_temporal_iou_threshold) &
             (gt_iou_map > low_temporal_iou_threshold)).astype(f32)
  u_lmask = ((gt_iou_map <= low_temporal_iou_threshold) &
             (gt_iou_map > 0.)).astype(f32) * mask
  num_h = jnp.sum(u_hmask)
  r_m = num_h / jnp.sum(u_mmask)
  u_smmask = (u_mmask * u_medium > (1. - r_m)).astype(f32)
  r_l = num_h / jnp.sum(u_lmask)
  u_slmask = (u_lmask * u_low > (1. - r_l)).astype(f32)
  weights = u_hmask + u_smmask + u_slmask
  sq = jnp.square(pred_score * weights - gt_iou_map * weights)
  return 0.5 * jnp.sum(sq) / jnp.sum(weights)


def pem_cls_loss(pred_score, gt_iou_map, mask, threshold=0.9,
                 ratio_range=(1.05, 21), eps=1e-5):
  """Proposal classification loss; pred_score, gt_iou_map [B, T, T], mask [T, T]."""
  pmask = (gt_iou_map > threshold).astype(jnp.float32)
  nmask = (gt_iou_map <= threshold).astype(jnp.float32) * mask
  num_positive = jnp.maximum(jnp.sum(pmask), 1.)
  num_entries = num_positive + jnp.sum(nmask)
  ratio = jnp.clip(num_entries / num_positive, *ratio_range)
  coef_0 = 0.5 * ratio / (ratio - 1)
  coef_1 = 0.5 * ratio
  loss_pos = coef_1 * jnp.log(pred_score + eps) * pmask
  loss_neg = coef_0 * jnp.log(1.0 - pred_score + eps) * nmask
  return -jnp.sum(loss_pos + loss_neg) / num_entries


def bmn_loss_from_uniforms(confidence_map, start, end, iou_map_target,
                           start_target, end_target, bm_mask, u_medium, u_low,
                           weight_tem=1.0, weight_pem_reg=10.0,
                           weight_pem_cls=1.0):
  """BMN loss with explicit uniform draws.

  Args:
    confidence_map: [B, T(duration), T(start), 2] (ch0 reg, ch1 cls).
    start, end: [B, T] predicted boundary probabilities.
    iou_map_target: [B, T, T]; start_target, end_target: [B, T].
    bm_mask: [T, T] valid cells s+d <= T-1.
    u_medium, u_low: [B, T, T] uniform draws (MMAction2's two `rand_like`).
  Returns:
    (total, {'tem_loss', 'pem_reg_loss', 'pem_cls_loss', 'loss'}) scalars.
  """
  f32 = jnp.float32
  confidence_map = confidence_map.astype(f32)
  gt_iou_map = iou_map_target * bm_mask
  reg = pem_reg_loss(confidence_map[..., 0], gt_iou_map, bm_mask, u_medium,
                     u_low)
  cls = pem_cls_loss(confidence_map[..., 1], gt_iou_map, bm_mask)
  tem = boundary_loss(start.astype(f32), end.astype(f32), start_target, end_target)
  total = weight_tem * tem + weight_pem_reg * reg + weight_pem_cls * cls
  return total, {'tem_loss': tem, 'pem_reg_loss': reg, 'pem_cls_loss': cls,
                 'loss': total}


def bmn_loss(confidence_map, start, end, iou_map_target, start_target,
             end_target, bm_mask, rng):
  """BMN loss; the pem_reg sub-sampling draws come from the JAX key `rng`.

  Shapes as `bmn_loss_from_uniforms`. Returns (total, metrics dict).
  """
  k_medium, k_low = jax.random.split(rng)
  shape = iou_map_target.shape
  return bmn_loss_from_uniforms(
      confidence_map, start, end, iou_map_target, start_target, end_target,
      bm_mask, jax.random.uniform(k_medium, shape),
      jax.random.uniform(k_low, shape))



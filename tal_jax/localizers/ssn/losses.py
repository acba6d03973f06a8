"""SSN loss (MMAction2 0.24.1 `SSNLoss`, `OHEMHingeLoss`) as pure jnp.

Proposal types: 0 positive, 1 incomplete, 2 background. The sampler lays out
each video's K = num_per_video proposals as [positives, incompletes,
backgrounds] (`tal_jax.ssn_targets.sample_video_proposals`), which is what
upstream's `view(-1, positive_per_video + incomplete_per_video)` relies on.

* loss_activity: cross entropy of activity_scores [.., C + 1] over positives
  and backgrounds (mean).
* loss_completeness: class-wise hinge on completeness[label - 1]: positives
  max(0, 1 - s), all kept; incompletes max(0, 1 + s), per video only the
  int(incomplete_per_video * ohem_ratio) largest kept (OHEM, ohem_ratio =
  positive_per_video / incomplete_per_video: 1 of 6); the sum is divided by
  (#positives + int(#incompletes * ohem_ratio)), times comp_loss_weight 0.1.
* loss_reg: smooth-L1 (beta 1) of the positives' bbox_preds[label - 1]
  against the normalised targets, mean over both coordinates times 2, times
  reg_loss_weight 0.1.
Total = the sum of the three (mmcv sums every 'loss*' entry).

A label of 0 indexes class C - 1 (`label - 1` wraps, as in torch).
"""

import jax
import jax.numpy as jnp

Array = jax.Array


def per_video_counts(num_per_video=8, positive_ratio=1, background_ratio=1,
                     incomplete_ratio=6):
  """(positive, background, incomplete) proposals per video, as upstream."""
  total = positive_ratio + background_ratio + incomplete_ratio
  pos = int(num_per_video * (positive_ratio / total))
  bg = int(num_per_video * (background_ratio / total))
  return pos, bg, num_per_video - pos - bg


def _class_column(scores, labels):
  """scores[..., label - 1] with torch's negative-index wrap. [...]."""
  idx = (labels - 1) % scores.shape[-1]
  return jnp.take_along_axis(scores, idx[..., None], axis=-1)[..., 0]


def activity_loss(activity_scores, labels, proposal_type):
  """Mean cross entropy over positives and backgrounds.

  Args:
    activity_scores: [N, C + 1]; labels, proposal_type: [N] int.
  """
  logp = jax.nn.log_softmax(activity_scores.astype(jnp.float32), axis=-1)
  nll = -jnp.take_along_axis(logp, labels[:, None], axis=-1)[:, 0]
  use = ((proposal_type == 0) | (proposal_type == 2)).astype(jnp.float32)
  return (nll * use).sum() / use.sum()


def completeness_loss(completeness_scores, labels, positive_per_video,
                      incomplete_per_video):
  """OHEM hinge; inputs per video, laid out [pos..., incomplete..., bg...].

  Args:
    completeness_scores: [B, K, C]; labels: [B, K] int.

  Returns:
    The unweighted completeness loss (scalar).
  """
  num_videos = completeness_scores.shape[0]
  pos, inc = positive_per_video, incomplete_per_video
  score = _class_column(completeness_scores.astype(jnp.float32), labels)
  pos_loss = jax.nn.relu(1.0 - score[:, :pos]).sum()
  ohem_ratio = pos / inc
  keep = int(inc * ohem_ratio)
  inc_hinge = jax.nn.relu(1.0 + score[:, pos:pos + inc])
  inc_loss = jax.lax.top_k(inc_hinge, keep)[0].sum() if keep else 0.0
  denom = float(num_videos * pos + int(num_videos * inc * ohem_ratio))
  return (pos_loss + inc_loss) / denom


def classwise_regression_loss(bbox_preds, labels, reg_targets, proposal_type):
  """2 * mean smooth-L1 of the positives' class column.

  Args:
    bbox_preds: [N, C, 2]; labels, proposal_type: [N]; reg_targets: [N, 2].
  """
  c = bbox_preds.shape[1]
  idx = (labels - 1) % c
  pred = jnp.take_along_axis(bbox_preds.astype(jnp.float32),
                             idx[:, None, None], axis=1)[:, 0]
  diff = jnp.abs(pred - reg_targets)
  sl1 = jnp.where(diff < 1.0, 0.5 * diff * diff, diff - 0.5)
  use = (proposal_type == 0).astype(jnp.float32)
  return 2.0 * (sl1.sum(axis=1) * use).sum() / (2.0 * use.sum())


def ssn_loss(activity_scores: Array, completeness_scores: Array,
             bbox_preds: Array | None, proposal_type: Array, labels: Array,
             reg_targets: Array, positive_per_video: int = 1,
             incomplete_per_video: int = 6, comp_loss_weight: float = 0.1,
             reg_loss_weight: float = 0.1):
  """SSNLoss of B videos of K proposals each.

  Args:
    activity_scores: [B, K, C + 1]; completeness_scores: [B, K, C];
    bbox_preds: [B, K, C, 2] or None.
    proposal_type, labels: [B, K] int; reg_targets: [B, K, 2] float32
      (normalised for positives).

  Returns:
    (total scalar, {'loss_activity', 'loss_completeness', 'loss_reg'}) with
    the weights applied.
  """
  b, k = proposal_type.shape
  flat = lambda a: a.reshape((b * k,) + a.shape[2:])
  parts = {'loss_activity': activity_loss(flat(activity_scores), flat(labels),
                                          flat(proposal_type))}
  parts['loss_completeness'] = comp_loss_weight * completeness_loss(
      completeness_scores, labels, positive_per_video, incomplete_per_video)
  if bbox_preds is not None:
    parts['loss_reg'] = reg_loss_weight * classwise_regression_loss(
        flat(bbox_preds), flat(labels), flat(reg_targets), flat(proposal_type))
  return sum(parts.values()), parts


def head_loss(module, params, batch, rng=None, positive_per_video=1,
              incomplete_per_video=6, comp_loss_weight=0.1,
              reg_loss_weight=0.1, model_state=None):
  """SSN head forward + `ssn_loss` of a batch of B videos (pure, jittable).

  Args:
    module: tal_jax.localizers.ssn.model.SSNHead.
    batch: 'inputs' [B, K, S, D] frame features (S = 9 segments),
      'proposal_scale_factor' [B, K, 2], 'proposal_type' and
      'proposal_labels' [B, K] int32, 'reg_targets' [B, K, 2] (as
      `tal_jax.ssn_targets.sample_split`, with inputs gathered at its
      frame_inds).
    rng: dropout key, or None for no dropout.
    model_state: the module's other collections (frame mode: the backbone's
      'batch_stats'), or None for a head alone.

  Returns:
    (total, {'loss_activity', 'loss_completeness', 'loss_reg'}), and with a
    model_state (total, (metrics, the updated model_state)): the backbone
    runs in training mode (BN batch statistics where its BN mode allows).
    With equal
    K per video this equals the mean of per-video losses, i.e. upstream's
    one video per GPU averaged over GPUs.
  """
  b, k = batch['proposal_type'].shape
  x = batch['inputs'].reshape((b * k,) + batch['inputs'].shape[2:])
  scale = batch['proposal_scale_factor'].reshape(b * k, 2)
  rngs = {} if rng is None else {'dropout': rng}
  if model_state is None:
    act, comp, bbox = module.apply({'params': params}, x, scale,
                                   deterministic=rng is None, rngs=rngs)
  else:
    (act, comp, bbox), new_state = module.apply(
        {'params': params, **model_state}, x, scale,
        deterministic=rng is None, train=True, rngs=rngs,
        mutable=['batch_stats'])
  c = comp.shape[-1]
  total, metrics = ssn_loss(
      act.reshape(b, k, -1), comp.reshape(b, k, c),
      None if bbox is None else bbox.reshape(b, k, c, 2),
      batch['proposal_type'], batch['proposal_labels'], batch['reg_targets'],
      positive_per_video, incomplete_per_video, comp_loss_weight,
      reg_loss_weight)
  if model_state is None:
    return total, metrics
  return total, (metrics, {**model_state, **new_state})

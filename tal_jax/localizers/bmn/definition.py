"""BMN as the engine sees it: labels, loss, decode and hooks in one ModelDef."""

import jax.numpy as jnp
import numpy as np

from tal_jax.data import thumos14_windows
from tal_jax.engine import model_def
from tal_jax.engine import window_test
from tal_jax.localizers.bmn import boundary_matching
from tal_jax.localizers.bmn import convert
from tal_jax.localizers.bmn import loss
from tal_jax.localizers.bmn import model
from tal_jax.localizers.bmn import postprocess
from tal_jax.localizers.bmn import targets
from tal_jax.localizers.bmn import windows
from tal_jax.ops import losses
from tal_jax.ops import segments


def train_arrays(videos, config) -> dict[str, np.ndarray]:
  """Features [N, T, D] and BMN labels (iou_map [N, T, T], start, end [N, T])
  of a split, computed once."""
  gt, gt_mask = segments.normalize_gt_batch(videos)
  iou_map, start, end = targets.bmn_targets_batch(
      gt, gt_mask, config.model.temporal_dim)
  return {'inputs': np.asarray(videos.features, np.float32),
          'iou_map': iou_map.astype(np.float32),
          'start': start.astype(np.float32), 'end': end.astype(np.float32)}


def loss_fn(module, params, batch, rng, config):
  """BMN loss on groups of config.train.videos_per_loss videos (MMAction2's
  per-GPU batch)."""
  conf, start, end = module.apply({'params': params}, batch['inputs'])
  mask = jnp.asarray(boundary_matching.bm_valid_mask(config.model.temporal_dim))

  def one_group(c, s, e, iou, st, en, key):
    return loss.bmn_loss(c, s, e, iou, st, en, mask, key)

  tensors = (conf.astype(jnp.float32), start.astype(jnp.float32),
             end.astype(jnp.float32), batch['iou_map'], batch['start'],
             batch['end'])
  return losses.grouped_loss(one_group, tensors, rng,
                             config.train.videos_per_loss)


def decode(outputs, batch, config):
  """(confidence map, start, end) -> soft-NMS'd proposals, normalised
  (THUMOS14 windows: OpenTAD's decoding, `windows.decode_windows`)."""
  del batch
  if thumos14_windows.is_windowed(config):
    return windows.decode_windows(outputs, config.test)
  conf, start, end = outputs
  t = config.test
  return postprocess.bmn_post_processing(
      conf, start, end, t.soft_nms_alpha, t.soft_nms_low_threshold,
      t.soft_nms_high_threshold, t.post_process_top_k)


DEFINITION = model_def.ModelDef(
    build=model.bmn_from_config, init_inputs=model_def.feature_inputs,
    train_arrays=train_arrays, eval_arrays=model_def.feature_arrays,
    loss=loss_fn, forward=model_def.apply_forward, decode=decode, test=window_test.proposal_test,
    import_state_dict=convert.import_state_dict, serving=convert.SERVING)

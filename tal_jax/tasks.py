"""What each model plugs into the training loop, as an explicit table.

A `ModelDef` bundles a model's pieces as plain functions, so `train.py` holds a
single loop for every model:
- build(config) -> flax module
- split_arrays(videos, config) -> host arrays [N, ...]: 'features' and the labels,
  computed once per split (never per step)
- loss(module, params, batch, rng, config) -> (scalar, metrics), pure and jittable
- forward(module, params, features, config) -> model outputs, pure and jittable
  (the device part of inference)
- decode(outputs, config) -> (proposals [B, K, 3] normalised (start, end, score),
  valid [B, K] bool) on the host (candidate decoding and soft-NMS)
"""

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from tal_jax import losses
from tal_jax import postprocess
from tal_jax import targets
from tal_jax.data import activitynet
from tal_jax.models import bmn
from tal_jax.models import layers


@dataclasses.dataclass(frozen=True)
class ModelDef:
  build: Callable[[ml_collections.ConfigDict], Any]
  split_arrays: Callable[[activitynet.VideoSet, ml_collections.ConfigDict],
                         dict[str, np.ndarray]]
  loss: Callable[..., tuple[jax.Array, dict[str, jax.Array]]]
  forward: Callable[..., Any]
  decode: Callable[..., tuple[np.ndarray, np.ndarray]]


def _bmn_build(config):
  return bmn.bmn_from_config(config)


def _bmn_split_arrays(videos, config):
  gt, gt_mask = targets.normalize_gt_batch(videos)
  iou_map, start, end = targets.bmn_targets_batch(
      gt, gt_mask, config.model.temporal_dim)
  return {'features': np.asarray(videos.features, np.float32),
          'iou_map': iou_map.astype(np.float32),
          'start': start.astype(np.float32), 'end': end.astype(np.float32)}


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


def _bmn_loss(module, params, batch, rng, config):
  conf, start, end = module.apply({'params': params}, batch['features'])
  mask = jnp.asarray(layers.bm_valid_mask(config.model.temporal_dim))

  def one_group(c, s, e, iou, st, en, key):
    return losses.bmn_loss(c, s, e, iou, st, en, mask, key)

  tensors = (conf.astype(jnp.float32), start.astype(jnp.float32),
             end.astype(jnp.float32), batch['iou_map'], batch['start'],
             batch['end'])
  return grouped_loss(one_group, tensors, rng, config.train.videos_per_loss)


def _bmn_forward(module, params, features, config):
  del config
  return module.apply({'params': params}, features)


def _bmn_decode(outputs, config):
  conf, start, end = outputs
  cand = postprocess.decode_bmn(conf, start, end)
  t = config.test
  props, valid = postprocess.post_processing(
      cand.proposals, cand.valid, t.soft_nms_alpha, t.soft_nms_low_threshold,
      t.soft_nms_high_threshold, t.post_process_top_k)
  return np.asarray(props), np.asarray(valid)


MODELS = {
    'bmn': ModelDef(build=_bmn_build, split_arrays=_bmn_split_arrays,
                    loss=_bmn_loss, forward=_bmn_forward,
                    decode=_bmn_decode),
}


def get(config: ml_collections.ConfigDict) -> ModelDef:
  from tal_jax import errors  # pylint: disable=g-import-not-at-top
  if config.model_name not in MODELS:
    raise errors.TalError(f"config.model_name '{config.model_name}' is not one "
                          f'of {sorted(MODELS)}')
  return MODELS[config.model_name]

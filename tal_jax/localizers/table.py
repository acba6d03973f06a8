"""What each model plugs into the training loop, as an explicit table.

A `ModelDef` bundles a model's pieces as plain functions, so `train.py` holds a
single loop for every model:
- build(config) -> flax module
- init_inputs(config) -> an example input batch [1, ...] for `module.init`
- train_arrays(videos, config) -> host arrays [N, ...]: 'inputs' and the labels,
  computed once per split (never per step)
- eval_arrays(videos, config) -> host arrays [N, ...]: 'inputs' and whatever
  `decode` needs
- loss(module, params, batch, rng, config) -> (scalar, metrics), pure, jittable
- forward(module, params, inputs, config) -> outputs, pure and jittable (the
  device part of batched inference; None for a model with its own `predict`)
- decode(outputs, batch, config) -> (proposals [B, K, 3] normalised (start, end,
  score), valid [B, K] bool), on the host (candidate decoding and soft-NMS;
  None with `predict`)
- uses_features: whether the split's feature files are read (PEM reads PGM
  outputs instead)
- to_seconds(proposals, duration_frame, duration_second) -> [B, K, 3] seconds
- run_test: a test mode of its own (TEM writes its outputs, not proposals)
- epoch_arrays(arrays, epoch, config) -> the arrays an epoch trains on, a
  function of (config.seed, epoch) only (SSN re-samples proposals each epoch);
  by default the split's arrays as they are
- param_labels(params, config) -> 'trainable' / 'frozen' tree, or None (all
  trainable); frozen leaves are torch's requires_grad=False
- load_pretrained(variables, config) -> the variables with the configured
  pretrained weights in place (SSN's ImageNet backbone; the loop puts the
  replaced host arrays on the devices), or None (no pretrained weights)
- predict(trainer, variables, videos, eval_arrays) -> {video: [K, 3]
  proposals in seconds} for the loop's validation, or None for
  `train.predict_split` (SSN predicts video by video)
A model with variables besides 'params' (BN statistics) gets them as
`loss(..., model_state=...)` and returns (loss, (metrics, new_model_state)).
"""

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from tal_jax.localizers.bsn import definition as bsn
from tal_jax.localizers.bmn import loss as losses
from tal_jax.localizers.bsn import pgm
from tal_jax.localizers.bmn import postprocess
from tal_jax.localizers.ssn import definition as ssn
from tal_jax.localizers.ssn import frames as ssn_frames
from tal_jax.localizers.bmn import targets
from tal_jax.data import activitynet
from tal_jax.localizers.bmn import model as bmn
from tal_jax.nn import layers


@dataclasses.dataclass(frozen=True)
class ModelDef:
  build: Callable[[ml_collections.ConfigDict], Any]
  init_inputs: Callable[[ml_collections.ConfigDict], np.ndarray]
  train_arrays: Callable[[activitynet.VideoSet, ml_collections.ConfigDict],
                         dict[str, np.ndarray]]
  eval_arrays: Callable[[activitynet.VideoSet, ml_collections.ConfigDict],
                        dict[str, np.ndarray]]
  loss: Callable[..., tuple[jax.Array, dict[str, jax.Array]]]
  forward: Callable[..., Any] | None = None
  decode: Callable[..., tuple[np.ndarray, np.ndarray]] | None = None
  uses_features: bool = True
  to_seconds: Callable[..., np.ndarray] = postprocess.to_seconds
  run_test: Callable[..., Any] | None = None
  epoch_arrays: Callable[..., dict[str, np.ndarray]] = (
      lambda arrays, epoch, config: arrays)
  param_labels: Callable[..., Any] | None = None
  load_pretrained: Callable[..., Any] | None = None
  predict: Callable[..., dict[str, np.ndarray]] | None = None


def feature_inputs(config: ml_collections.ConfigDict) -> np.ndarray:
  """[1, T, D] zeros: the example input of feature-based models."""
  return np.zeros((1, config.model.temporal_dim, config.model.feat_dim),
                  np.float32)


def feature_arrays(videos: activitynet.VideoSet,
                   config: ml_collections.ConfigDict) -> dict[str, np.ndarray]:
  del config
  return {'inputs': videos.features}


def apply_forward(module, params, inputs, config):
  del config
  return module.apply({'params': params}, inputs)


def _bmn_build(config):
  return bmn.bmn_from_config(config)


def _bmn_train_arrays(videos, config):
  gt, gt_mask = targets.normalize_gt_batch(videos)
  iou_map, start, end = targets.bmn_targets_batch(
      gt, gt_mask, config.model.temporal_dim)
  return {'inputs': np.asarray(videos.features, np.float32),
          'iou_map': iou_map.astype(np.float32),
          'start': start.astype(np.float32), 'end': end.astype(np.float32)}


def _bmn_loss(module, params, batch, rng, config):
  conf, start, end = module.apply({'params': params}, batch['inputs'])
  mask = jnp.asarray(layers.bm_valid_mask(config.model.temporal_dim))

  def one_group(c, s, e, iou, st, en, key):
    return losses.bmn_loss(c, s, e, iou, st, en, mask, key)

  tensors = (conf.astype(jnp.float32), start.astype(jnp.float32),
             end.astype(jnp.float32), batch['iou_map'], batch['start'],
             batch['end'])
  return losses.grouped_loss(one_group, tensors, rng,
                             config.train.videos_per_loss)


def _bmn_decode(outputs, batch, config):
  del batch
  conf, start, end = outputs
  t = config.test
  return postprocess.bmn_post_processing(
      conf, start, end, t.soft_nms_alpha, t.soft_nms_low_threshold,
      t.soft_nms_high_threshold, t.post_process_top_k)


MODELS = {
    'bmn': ModelDef(build=_bmn_build, init_inputs=feature_inputs,
                    train_arrays=_bmn_train_arrays, eval_arrays=feature_arrays,
                    loss=_bmn_loss, forward=apply_forward,
                    decode=_bmn_decode),
    'bsn_tem': ModelDef(build=bsn.tem_build, init_inputs=feature_inputs,
                        train_arrays=bsn.tem_train_arrays,
                        eval_arrays=feature_arrays, loss=bsn.tem_loss_fn,
                        forward=apply_forward, decode=bsn.tem_decode,
                        run_test=bsn.run_tem_test),
    'bsn_pem': ModelDef(build=bsn.pem_build, init_inputs=bsn.pem_init_inputs,
                        train_arrays=bsn.pem_train_arrays,
                        eval_arrays=bsn.pem_eval_arrays, loss=bsn.pem_loss_fn,
                        forward=apply_forward, decode=bsn.pem_decode,
                        uses_features=False, to_seconds=pgm.to_seconds),
    'ssn': ModelDef(build=ssn.build, init_inputs=ssn.init_inputs,
                    train_arrays=ssn.train_arrays, eval_arrays=ssn.eval_arrays,
                    loss=ssn.loss, uses_features=False,
                    run_test=ssn.run_test, epoch_arrays=ssn.epoch_arrays,
                    param_labels=ssn_frames.param_labels,
                    load_pretrained=ssn_frames.load_pretrained,
                    predict=ssn.predict),
}


def get(config: ml_collections.ConfigDict) -> ModelDef:
  from tal_jax import errors  # pylint: disable=g-import-not-at-top
  if config.model_name not in MODELS:
    raise errors.TalError(f"config.model_name '{config.model_name}' is not one "
                          f'of {sorted(MODELS)}')
  return MODELS[config.model_name]

"""SSN head (MMAction2 0.24.1 `SSNHead`, `STPPTrain`, `STPPTest`) in Flax.

The head works on per-frame feature vectors (the pooled ResNet-50 output; the
backbone lives in tal_jax/models/resnet.py):

* Training (`SSNHead.__call__`): each sampled proposal brings
  sum(num_segments_list) = 2 + 5 + 2 = 9 frame features (starting, course,
  ending stage). `stpp_train` pools them into the course feature [N, D]
  (activity input) and the structured pyramid feature [N, M * D] (M = 3
  parts for stpp_stage (1, 1, 1); completeness and regression input).
* Testing (`fused_test_fc`, `stpp_test`): as upstream, the three FCs are fused
  into one [D, (C + 1) + M * C + M * 2C] layer applied to every sampled frame
  (one tick every `test_interval` frames), and the scores are pooled per
  proposal from its four ticks. Completeness and regression biases are divided
  by M in the fused layer, so the pooled scores equal the training-time head
  on the pooled features (up to the boundary handling of `stpp_test`).

Initialisation as 0.24.1's `SSNHead.init_weights`: every FC normal(std=
init_std=0.001), bias 0. Dropout: the localizer applies dropout
(`dropout_ratio` 0.8 in the config) to the pooled frame features before the
head; the head's own dropout is 0 in the config. Both are here (`dropout_ratio`
on the input frame features, `head_dropout_ratio` on the pooled features).
"""

import functools
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from tal_jax.data import rawframes
from tal_jax.localizers.ssn import frames as ssn_frames

Array = jax.Array


def parse_stage_config(stage_cfg):
  """(parts tuple, number of multipliers) of one STPP stage config."""
  if isinstance(stage_cfg, int):
    return (stage_cfg,), stage_cfg
  stage_cfg = tuple(stage_cfg)
  return stage_cfg, sum(stage_cfg)


def num_multipliers(stpp_stage) -> int:
  """M: total number of pyramid parts over the three stages."""
  return sum(parse_stage_config(s)[1] for s in stpp_stage)


def _part_ticks(length, num_parts):
  """Part boundaries as torch.arange(0, L + 1e-5, L / p).int() (float64)."""
  step = length / num_parts
  return [int(i * step) for i in range(num_parts + 1)]


def _stage_feature(stage_feat, stage_cfg, scale):
  """STPP of one stage: list of [N, D] part means / stage multiplier.

  Args:
    stage_feat: [N, L, D] the stage's segment features.
    stage_cfg: int or tuple of part counts.
    scale: [N] scale factors (None for the course stage).
  """
  parts, multiplier = parse_stage_config(stage_cfg)
  out = []
  for num_parts in parts:
    ticks = _part_ticks(stage_feat.shape[1], num_parts)
    for i in range(num_parts):
      part = stage_feat[:, ticks[i]:ticks[i + 1]].mean(axis=1) / multiplier
      out.append(part if scale is None else part * scale[:, None])
  return out


def stpp_train(x: Array, scale_factors: Array, stpp_stage=(1, 1, 1),
               num_segments_list=(2, 5, 2)) -> tuple[Array, Array]:
  """Train-time structured temporal pyramid pooling (`STPPTrain`).

  Args:
    x: [N, S, D] segment features of N proposals, S = sum(num_segments_list)
      in order starting, course, ending.
    scale_factors: [N, 2] (starting, ending) ratios of the valid augmented
      length to the nominal one (`SSNDataset._get_stage`).

  Returns:
    course_feat: [N, D] mean of the course segments.
    stpp_feat: [N, M * D] parts in order starting, course, ending; each part
      is a mean divided by its stage's multiplier, starting/ending parts times
      their scale factor.
  """
  x0 = num_segments_list[0]
  x1 = x0 + num_segments_list[1]
  feats = []
  feats += _stage_feature(x[:, :x0], stpp_stage[0], scale_factors[:, 0])
  feats += _stage_feature(x[:, x0:x1], stpp_stage[1], None)
  feats += _stage_feature(x[:, x1:], stpp_stage[2], scale_factors[:, 1])
  return x[:, x0:x1].mean(axis=1), jnp.concatenate(feats, axis=-1)


def _torch_linear_init(std):
  return nn.initializers.normal(stddev=std)


class SSNHead(nn.Module):
  """SSN activity / completeness / regression head (train-time form).

  Attributes:
    num_classes: C (20 for THUMOS14), without background.
    stpp_stage: STPP parts per stage, (1, 1, 1) in the config.
    num_segments_list: segments per stage, (2, 5, 2).
    use_regression: whether the regressor FC exists.
    init_std: normal init std of every FC (0.001, biases 0).
    dropout_ratio: dropout on the input frame features (the localizer's 0.8).
    head_dropout_ratio: dropout on the pooled features (the head's, 0).
  """
  num_classes: int = 20
  stpp_stage: Sequence = (1, 1, 1)
  num_segments_list: Sequence[int] = (2, 5, 2)
  use_regression: bool = True
  init_std: float = 0.001
  dropout_ratio: float = 0.0
  head_dropout_ratio: float = 0.0

  def _dense(self, features, name):
    return nn.Dense(features, kernel_init=_torch_linear_init(self.init_std),
                    bias_init=nn.initializers.zeros, name=name)

  @nn.compact
  def __call__(self, x: Array, scale_factors: Array,
               deterministic: bool = True):
    """Head outputs of N proposals.

    Args:
      x: [N, S, D] frame features (S = 9 segments per proposal).
      scale_factors: [N, 2] float32.
      deterministic: no dropout when True; else needs the 'dropout' rng.

    Returns:
      activity_scores [N, C + 1] (class 0 = background),
      completeness_scores [N, C], bbox_preds [N, C, 2] (center, log-span;
      None without regression).
    """
    if self.dropout_ratio:
      x = nn.Dropout(self.dropout_ratio)(x, deterministic=deterministic)
    course, stpp = stpp_train(x, scale_factors, self.stpp_stage,
                              self.num_segments_list)
    if self.head_dropout_ratio:
      drop = nn.Dropout(self.head_dropout_ratio)
      course = drop(course, deterministic=deterministic)
      stpp = drop(stpp, deterministic=deterministic)
    c = self.num_classes
    activity = self._dense(c + 1, 'activity_fc')(course)
    completeness = self._dense(c, 'completeness_fc')(stpp)
    if not self.use_regression:
      return activity, completeness, None
    bbox = self._dense(2 * c, 'regressor_fc')(stpp).reshape(-1, c, 2)
    return activity, completeness, bbox


# ------------------------------------------------------------- test time


def fused_test_fc(params, stpp_stage=(1, 1, 1)) -> tuple[Array, Array]:
  """One FC for every tick (`SSNHead.prepare_test_fc`).

  Args:
    params: SSNHead params ({'activity_fc', 'completeness_fc',
      'regressor_fc'?}, Flax kernels [in, out]).

  Returns:
    kernel [D, (C + 1) + M * C (+ M * 2C)], bias [same]: columns are the
    activity scores, then per part m the completeness (and, after all of
    those, per part the regression) columns; those biases are divided by M.
  """
  m = num_multipliers(stpp_stage)
  act = params['activity_fc']
  kernels, biases = [act['kernel']], [act['bias']]
  for name in ('completeness_fc', 'regressor_fc'):
    if name not in params:
      continue
    k, b = params[name]['kernel'], params[name]['bias']
    d = k.shape[0] // m
    kernels.append(k.reshape(m, d, -1).transpose(1, 0, 2).reshape(d, -1))
    biases.append(jnp.tile(b, m) / m)
  return jnp.concatenate(kernels, axis=1), jnp.concatenate(biases)


def _window_weights(left, right, width, num_ticks):
  """[P, width] weights averaging ticks [left, right) clipped to [0, T).

  num_ticks: the valid T (<= width; the rest is padding). Rows whose clipped
  window is empty are all zero.
  """
  t = jnp.arange(width)[None, :]
  inside = (t >= left[:, None]) & (t < jnp.minimum(right, num_ticks)[:, None])
  count = jnp.maximum(inside.sum(axis=1, keepdims=True), 1)
  return inside.astype(jnp.float32) / count


def _stage_windows(ticks, stpp_stage, num_ticks):
  """Per pyramid part: (left [P], right [P], stage index, skip mask [P]).

  As `STPPTest._pyramids_pooling`: a stage spans ticks[s] .. max(ticks[s] + 1,
  ticks[s + 1]); a stage wholly outside [0, T) adds nothing; a part narrower
  than one tick adds nothing.
  """
  out = []
  for s, stage_cfg in enumerate(stpp_stage):
    parts, _ = parse_stage_config(stage_cfg)
    left = ticks[:, s].astype(jnp.float32)
    right = jnp.maximum(ticks[:, s] + 1, ticks[:, s + 1]).astype(jnp.float32)
    outside = (right <= 0) | (left >= num_ticks)
    for num_parts in parts:
      step = (right - left) / num_parts
      for i in range(num_parts):
        pl = (left + i * step).astype(jnp.int32)
        pr = right.astype(jnp.int32) if i == num_parts - 1 else (
            left + (i + 1) * step).astype(jnp.int32)
        out.append((pl, pr, s, outside | (pr - pl < 1)))
  return out


def stpp_test(scores: Array, ticks: Array, scale_factors: Array,
              num_classes: int, stpp_stage=(1, 1, 1),
              use_regression: bool = True, num_ticks=None):
  """Test-time pooling of fused-FC tick scores (`STPPTest.forward`).

  Args:
    scores: [T, F] fused FC output of the T sampled frames.
    ticks: [P, 4] int (real start, start, end, real end) tick indices.
    scale_factors: [P, 2] float32 (starting, ending).
    num_classes: C.
    num_ticks: valid rows of `scores` (int or traced scalar); rows past it
      are padding. Default: all T.

  Returns:
    activity [P, C + 1] (mean over ticks[1] .. max(ticks[1] + 1, ticks[2])),
    completeness [P, C], bbox_preds [P, C, 2] or None: sum over parts of the
    part's mean scores times the stage's scale factor (1 for the course).
  """
  width = scores.shape[0]
  num_ticks = width if num_ticks is None else num_ticks
  c = num_classes
  m = num_multipliers(stpp_stage)
  act_w = _window_weights(ticks[:, 1], jnp.maximum(ticks[:, 1] + 1,
                                                   ticks[:, 2]), width,
                          num_ticks)
  activity = act_w @ scores[:, :c + 1]
  comp = jnp.zeros((ticks.shape[0], c), scores.dtype)
  reg = jnp.zeros((ticks.shape[0], 2 * c), scores.dtype)
  last = len(stpp_stage) - 1
  for k, (pl, pr, s, skip) in enumerate(_stage_windows(ticks, stpp_stage,
                                                       num_ticks)):
    w = _window_weights(pl, pr, width, num_ticks)
    scale = (scale_factors[:, 0] if s == 0 else
             scale_factors[:, 1] if s == last else 1.0)
    w = w * jnp.where(skip, 0.0, scale)[:, None]
    comp = comp + w @ scores[:, c + 1 + k * c:c + 1 + (k + 1) * c]
    if use_regression:
      off = c + 1 + m * c
      reg = reg + w @ scores[:, off + k * 2 * c:off + (k + 1) * 2 * c]
  return activity, comp, (reg.reshape(-1, c, 2) if use_regression else None)


@functools.partial(jax.jit, static_argnames=('num_classes', 'stpp_stage',
                                             'use_regression'))
def ssn_test_forward(params, frame_features: Array, ticks: Array,
                     scale_factors: Array, num_classes: int,
                     stpp_stage=(1, 1, 1), use_regression: bool = True,
                     num_ticks=None):
  """Test-time head of one video: fused FC on every tick, then `stpp_test`.

  Args:
    params: SSNHead params.
    frame_features: [T, D] features of the sampled frames (one every
      test_interval frames).
    ticks: [P, 4] int32; scale_factors: [P, 2] (from
      `tal_jax.ssn_targets.test_inputs`).
    num_ticks: valid rows of frame_features when padded (scalar), else None.
    Jitted; num_classes, stpp_stage (a hashable tuple) and use_regression
    are static.

  Returns:
    (activity [P, C + 1], completeness [P, C], bbox_preds [P, C, 2]
    normalised; de-normalise with `tal_jax.ssn_postprocess`).
  """
  kernel, bias = fused_test_fc(params, stpp_stage)
  scores = frame_features @ kernel + bias
  return stpp_test(scores, ticks, scale_factors, num_classes, stpp_stage,
                   use_regression, num_ticks)


class SSN(nn.Module):
  """SSN: the head under 'head', and in frame mode the backbone under
  'backbone' (its BN statistics in the 'batch_stats' collection)."""
  num_classes: int = 20
  stpp_stage: tuple = (1, 1, 1)
  num_segments_list: tuple = (2, 5, 2)
  use_regression: bool = True
  init_std: float = 0.001
  dropout_ratio: float = 0.8
  backbone: Any = None

  def frame_features(self, images, train=False):
    """[..., c, c, 3] frames -> [..., D] float32 pooled backbone features
    (the spatial mean: upstream's 7x7 average pool at 224). uint8 frames are
    RGB and get upstream's normalisation (BGR minus the mean); float frames
    are taken as normalised already."""
    lead = images.shape[:-3]
    x = images.reshape((-1,) + images.shape[-3:])
    if x.dtype == jnp.uint8:
      x = rawframes.normalize(x)
    pooled = self.backbone(x, train=train)['pooled']
    return pooled.reshape(lead + pooled.shape[-1:])

  @nn.compact
  def __call__(self, x, scale_factors=None, deterministic=True, train=False):
    """Head outputs of N proposals.

    Args:
      x: [N, S, D] frame features, or in frame mode [N, S, c, c, 3] uint8
        frames.
      scale_factors: [N, 2] (ones if None).
      deterministic: no dropout.
      train: BN batch statistics where the backbone's BN mode allows (apply
        with mutable=['batch_stats']).
    """
    if self.backbone is not None:
      x = self.frame_features(x, train)
    if scale_factors is None:
      scale_factors = jnp.ones((x.shape[0], 2), x.dtype)
    head = SSNHead(
        num_classes=self.num_classes, stpp_stage=self.stpp_stage,
        num_segments_list=self.num_segments_list,
        use_regression=self.use_regression, init_std=self.init_std,
        dropout_ratio=self.dropout_ratio, name='head')
    return head(x, scale_factors, deterministic)


def stage(config) -> tuple:
  """config.model.stpp_stage as a (hashable) tuple."""
  return tuple(config.model.stpp_stage)


def build(config: ml_collections.ConfigDict) -> SSN:
  m = config.model
  backbone = (ssn_frames.build_backbone(config)
              if ssn_frames.is_frames(config) else None)
  return SSN(num_classes=m.num_classes, stpp_stage=stage(config),
             num_segments_list=tuple(m.num_segments_list),
             use_regression=m.use_regression, init_std=m.init_std,
             dropout_ratio=m.dropout_ratio, backbone=backbone)


def init_inputs(config: ml_collections.ConfigDict) -> np.ndarray:
  """One proposal's segments: [1, S, D] zero features, or in frame mode
  [1, S, c, c, 3] uint8 zero frames."""
  s = sum(config.model.num_segments_list)
  if ssn_frames.is_frames(config):
    c = config.data.crop_size
    return np.zeros((1, s, c, c, 3), np.uint8)
  return np.zeros((1, s, config.model.feat_dim), np.float32)

"""SSN (MMAction2 0.24.1) as a piece of the shared training loop, feature mode.

Data (tal_jax/data/thumos14.py): SSN proposal lists + per-frame features
[num_frames, D] per video (the pooled backbone output of every frame).

* train_arrays: the split's proposal assignment (pools, regression
  constants) and its frame features, computed once; `inputs` is the video
  index [N] and `ssn_split` holds the split (an object array).
* epoch_arrays: each epoch re-samples 8 proposals per video (1 positive, 6
  incomplete, 1 background; random frames in their 2 + 5 + 2 segments) with
  np.random.default_rng([config.seed, epoch, 55]): a function of (seed,
  epoch) only, so a resumed run trains on the same samples. Returns
  'inputs' [N, 8, 9, D] and the targets `ssn_losses.head_loss` reads.
* eval_arrays: per video the features of its ticks (one frame every
  test_interval), padded to [N, T_max, D], and its proposals' tick windows,
  scale factors and relative bounds, padded to P_max.
* forward (device): the fused test FC on every tick -> [B, T_max, F].
* decode (host): STPP-test pooling, scoring, regression, per-class NMS
  (`ssn_postprocess.video_detections`). The loop's per-epoch validation gets
  class-agnostic proposals: every video's detections of all classes merged
  and ranked by score (top config.test.post_process_top_k), scored by AR@AN.
* run_test: detections with labels -> results.json (ActivityNet format,
  seconds, class names) and metrics.json (THUMOS mAP@0.1..0.9 and AR@AN).
"""

import functools
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from tal_jax import errors
from tal_jax import ssn_losses
from tal_jax import ssn_postprocess
from tal_jax import ssn_targets
from tal_jax.data import thumos14
from tal_jax.models import ssn as ssn_models


class SSN(nn.Module):
  """SSN on frame features: the head under 'head' (frame mode would add the
  backbone beside it)."""
  num_classes: int = 20
  stpp_stage: tuple = (1, 1, 1)
  num_segments_list: tuple = (2, 5, 2)
  use_regression: bool = True
  init_std: float = 0.001
  dropout_ratio: float = 0.8

  @nn.compact
  def __call__(self, x, scale_factors=None, deterministic=True):
    """x: [N, S, D] frame features; scale_factors: [N, 2] (ones if None)."""
    if scale_factors is None:
      scale_factors = jnp.ones((x.shape[0], 2), x.dtype)
    head = ssn_models.SSNHead(
        num_classes=self.num_classes, stpp_stage=self.stpp_stage,
        num_segments_list=self.num_segments_list,
        use_regression=self.use_regression, init_std=self.init_std,
        dropout_ratio=self.dropout_ratio, name='head')
    return head(x, scale_factors, deterministic)


def _stage(config):
  return tuple(config.model.stpp_stage)


def build(config: ml_collections.ConfigDict) -> SSN:
  m = config.model
  return SSN(num_classes=m.num_classes, stpp_stage=_stage(config),
             num_segments_list=tuple(m.num_segments_list),
             use_regression=m.use_regression, init_std=m.init_std,
             dropout_ratio=m.dropout_ratio)


def init_inputs(config: ml_collections.ConfigDict) -> np.ndarray:
  """[1, S, D] zeros (one proposal's segment features)."""
  return np.zeros((1, sum(config.model.num_segments_list),
                   config.model.feat_dim), np.float32)


def _counts(config):
  """(positive, incomplete, background) proposals per video."""
  m = config.model
  pos, bg, inc = ssn_losses.per_video_counts(
      m.num_per_video, m.positive_ratio, m.background_ratio,
      m.incomplete_ratio)
  return pos, inc, bg


# ------------------------------------------------------------- training


class TrainSplit:
  """A training split: SSNVideos, their assignment and frame features
  (per video [num_frames, D], memory-mapped)."""

  def __init__(self, videos, pools, features):
    self.videos, self.pools, self.features = videos, pools, features


def _assigner(config):
  return dict(ssn_targets.TRAIN_ASSIGNER, **config.model.assigner.to_dict())


def train_arrays(videos, config) -> dict[str, np.ndarray]:
  """{'inputs': [N] video index, 'ssn_split': [N] object (the TrainSplit)}."""
  ssn_videos = [r['ssn_video'] for r in videos.records]
  pools = ssn_targets.assign_split(ssn_videos, _assigner(config))
  features = thumos14.load_frame_features(config, videos)
  holder = np.empty(len(ssn_videos), object)
  split = TrainSplit(ssn_videos, pools, features)
  for i in range(len(holder)):
    holder[i] = split
  return {'inputs': np.arange(len(ssn_videos)), 'ssn_split': holder}


def epoch_rng(config, epoch: int) -> np.random.Generator:
  return np.random.default_rng([config.seed, epoch, 55])


def epoch_arrays(arrays, epoch, config) -> dict[str, np.ndarray]:
  """This epoch's proposal samples of every video (see the module doc)."""
  if 'ssn_split' not in arrays:
    return arrays
  split = arrays['ssn_split'][0]
  sample = ssn_targets.sample_split(
      split.videos, epoch_rng(config, epoch), counts=_counts(config),
      mode='train', pools=split.pools)
  frames = sample.pop('frame_inds')
  sample['inputs'] = np.stack([np.asarray(f[i], np.float32)
                               for f, i in zip(split.features, frames)])
  return sample


def loss(module, params, batch, rng, config):
  m = config.model
  pos, inc, _ = _counts(config)
  return ssn_losses.head_loss(module, params, batch, rng, pos, inc,
                              m.comp_loss_weight, m.reg_loss_weight)


# ----------------------------------------------------------------- test


def _reg_norm(ssn_videos, config):
  """The split's own regression constants (upstream's test dataset's)."""
  return ssn_targets.reg_normalize_constants(
      ssn_videos, config.model.assigner.positive_iou_threshold)


def eval_arrays(videos, config) -> dict[str, np.ndarray]:
  """Padded test inputs of every video (see the module doc); the loop's
  per-epoch evaluation holds them in memory: N x T_max x D floats."""
  ssn_videos = [r['ssn_video'] for r in videos.records]
  features = thumos14.load_frame_features(config, videos)
  reg_norm = _reg_norm(ssn_videos, config)
  tests = [ssn_targets.test_inputs(v, config.test.test_interval)
           for v in ssn_videos]
  n, d = len(tests), config.model.feat_dim
  t_max = max(1, max(len(t['frame_ticks']) for t in tests))
  p_max = max(len(t['proposal_tick_list']) for t in tests)
  out = {'inputs': np.zeros((n, t_max, d), np.float32),
         'num_ticks': np.zeros(n, np.int32),
         'ticks': np.zeros((n, p_max, 4), np.int32),
         'scale': np.ones((n, p_max, 2), np.float32),
         'relative': np.zeros((n, p_max, 2), np.float32),
         'num_proposals': np.zeros(n, np.int32),
         'reg_norm': np.repeat(reg_norm[None], n, axis=0)}
  for i, t in enumerate(tests):
    ticks, p = t['frame_ticks'], len(t['proposal_tick_list'])
    out['inputs'][i, :len(ticks)] = features[i][ticks]
    out['num_ticks'][i], out['num_proposals'][i] = len(ticks), p
    out['ticks'][i, :p] = t['proposal_tick_list']
    out['scale'][i, :p] = t['scale_factor_list']
    out['relative'][i, :p] = t['relative_proposal_list']
  return out


def forward(module, params, inputs, config):
  """Fused test FC on every tick: [B, T, D] -> [B, T, F]."""
  del module
  kernel, bias = ssn_models.fused_test_fc(params['head'], _stage(config))
  return inputs @ kernel + bias


@functools.partial(jax.jit, static_argnames=('num_classes', 'stpp_stage',
                                             'use_regression'))
def _pool_batch(scores, ticks, scale, num_ticks, num_classes, stpp_stage,
                use_regression):
  def one(s, t, f, n):
    return ssn_models.stpp_test(s, t, f, num_classes, stpp_stage,
                                use_regression, n)
  return jax.vmap(one)(scores, ticks, scale, num_ticks)


def detections(outputs, batch, config) -> list[dict[int, np.ndarray]]:
  """Per video {class index: [D, 5] relative (start, end, score, loc, size)}."""
  m, t = config.model, config.test
  act, comp, bbox = jax.device_get(_pool_batch(
      jnp.asarray(outputs), jnp.asarray(batch['ticks']),
      jnp.asarray(batch['scale']), jnp.asarray(batch['num_ticks']),
      m.num_classes, _stage(config), m.use_regression))
  out = []
  for b in range(len(act)):
    p = int(batch['num_proposals'][b])
    out.append(ssn_postprocess.video_detections(
        batch['relative'][b, :p], act[b, :p], comp[b, :p],
        None if bbox is None else bbox[b, :p], batch['reg_norm'][b],
        t.top_k, t.nms, m.use_regression))
  return out


def decode(outputs, batch, config):
  """Class-agnostic proposals for AR@AN: ([B, K, 3] relative (start, end,
  score), valid [B, K]), all classes' detections ranked by score."""
  k = config.test.post_process_top_k
  dets = detections(outputs, batch, config)
  props = np.zeros((len(dets), k, 3))
  valid = np.zeros((len(dets), k), bool)
  for i, by_class in enumerate(dets):
    rows = np.concatenate([r[:, :3] for r in by_class.values()]
                          or [np.zeros((0, 3))])
    rows = rows[np.argsort(-rows[:, 2], kind='stable')][:k]
    props[i, :len(rows)], valid[i, :len(rows)] = rows, True
  return props, valid


def to_seconds(proposals, duration_frame, duration_second):
  """[B, K, 3] relative -> seconds (start, end times the duration)."""
  del duration_frame
  out = np.array(proposals, np.float64)
  out[..., :2] *= np.asarray(duration_second, np.float64)[:, None, None]
  return out


def _bucket(n: int, size: int) -> int:
  return max(size, -(-n // size) * size)


def video_detections(params, video, features, reg_norm, config):
  """{class index: [D, 5] relative rows} of one test video (unpadded but for
  buckets of 1024 ticks / 256 proposals, which bound recompilation)."""
  m, t = config.model, config.test
  inp = ssn_targets.test_inputs(video, t.test_interval)
  ticks, p = inp['frame_ticks'], len(inp['proposal_tick_list'])
  feats = np.zeros((_bucket(len(ticks), 1024), m.feat_dim), np.float32)
  feats[:len(ticks)] = features[ticks]
  tick_list = np.zeros((_bucket(p, 256), 4), np.int32)
  tick_list[:p] = inp['proposal_tick_list']
  scale = np.ones((len(tick_list), 2), np.float32)
  scale[:p] = inp['scale_factor_list']
  act, comp, bbox = jax.device_get(ssn_models.ssn_test_forward(
      params['head'], feats, tick_list, scale, m.num_classes, _stage(config),
      m.use_regression, np.int32(len(ticks))))
  return ssn_postprocess.video_detections(
      inp['relative_proposal_list'], act[:p], comp[:p],
      None if bbox is None else bbox[:p], reg_norm, t.top_k, t.nms,
      m.use_regression)


def run_test(config: ml_collections.ConfigDict, workdir: str,
             quiet: bool = False) -> dict[str, float]:
  """Detections of the test split -> results.json and metrics.json."""
  from tal_jax import infer  # pylint: disable=g-import-not-at-top
  from tal_jax import runlog  # pylint: disable=g-import-not-at-top
  from tal_jax import train  # pylint: disable=g-import-not-at-top
  from tal_jax.data import pipeline  # pylint: disable=g-import-not-at-top
  progress = runlog.show_progress(quiet)
  videos = pipeline.load_split(config, 'test', progress)
  trainer = train.Trainer(config, steps_per_epoch=1)
  params, where = infer.restore_params(trainer, config, workdir)
  runlog.info(f'restored {where}', quiet)
  ssn_videos = [r['ssn_video'] for r in videos.records]
  features = thumos14.load_frame_features(config, videos)
  reg_norm = _reg_norm(ssn_videos, config)
  items = zip(videos.names, ssn_videos, features)
  if progress:
    from tqdm import tqdm  # pylint: disable=g-import-not-at-top
    items = tqdm(list(items), desc='test', leave=False)
  dets = {name: video_detections(params, v, f, reg_norm, config)
          for name, v, f in items}
  metrics = ssn_postprocess.thumos_map(
      ssn_targets.relative_ground_truth(ssn_videos), dets,
      config.model.num_classes)
  if jax.process_index() == 0:
    errors.write_json(os.path.join(workdir, 'results.json'),
                      results_json(videos, dets))
    errors.write_json(os.path.join(workdir, 'metrics.json'), metrics,
                      indent=2)
  runlog.info('test: ' + runlog.format_metrics(
      {k: v for k, v in metrics.items() if k in HEADLINE}), quiet)
  return metrics


HEADLINE = ('mAP@0.30', 'mAP@0.40', 'mAP@0.50', 'average_mAP')


def results_json(videos, dets) -> dict:
  """ActivityNet results format: segments in seconds, class-name labels,
  each video's detections by descending score."""
  results = {}
  for name, rec in zip(videos.names, videos.records):
    secs = rec['duration_second']
    items = [{'segment': [float(r[0]) * secs, float(r[1]) * secs],
              'score': float(r[2]), 'label': thumos14.CLASSES[c]}
             for c, rows in dets.get(name, {}).items() for r in rows]
    results[name] = sorted(items, key=lambda x: -x['score'])
  return {'version': 'THUMOS14', 'results': results, 'external_data': {}}

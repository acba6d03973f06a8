"""SSN (MMAction2 0.24.1) as a piece of the shared training loop.

Data (tal_jax/data/thumos14.py): SSN proposal lists plus, per
config.data.mode, per-frame features [num_frames, D] per video ('features':
the pooled backbone output of every frame) or the rawframes themselves
('frames': the ResNet backbone trains with the head, tal_jax/ssn_frames.py).

* train_arrays: the split's proposal assignment (pools, regression
  constants) and its per-video sources (features or frame folders), computed
  once; `inputs` is the video index [N] and `ssn_split` holds the split (an
  object array).
* epoch_arrays: each epoch re-samples 8 proposals per video (1 positive, 6
  incomplete, 1 background; random frames in their 2 + 5 + 2 segments) with
  np.random.default_rng([config.seed, epoch, 55]): a function of (seed,
  epoch) only, so a resumed run trains on the same samples. Returns
  'inputs' [N, 8, 9, D] features or [N, 8, 9, c, c, 3] uint8 frames, and the
  targets `ssn_losses.ssn_loss` reads.
* eval_arrays: per video its test inputs (ticks: one frame every
  test_interval; proposals' tick windows, scale factors, relative bounds)
  and the split's regression constants.
* predict / test, video by video (memory bounded by one video): the
  ticks' features (read, or computed by the backbone in eval mode), the fused
  test FC, STPP-test pooling, scoring, regression and per-class NMS
  (`ssn_postprocess.video_detections`). The loop's per-epoch validation gets
  class-agnostic proposals: every video's detections of all classes merged
  and ranked by score (top config.test.post_process_top_k), scored by AR@AN;
  --mode=test writes results.json (ActivityNet format, seconds, class names)
  and metrics.json (THUMOS mAP@0.1..0.9).
"""

import os

import jax
import numpy as np

from tal_jax import errors
from tal_jax.engine import model_def
from tal_jax.engine import runlog
from tal_jax.localizers.ssn import losses as ssn_losses
from tal_jax.localizers.ssn import postprocess as ssn_postprocess
from tal_jax.localizers.ssn import frames as ssn_frames
from tal_jax.localizers.ssn import targets as ssn_targets
from tal_jax.data import thumos14
from tal_jax.localizers.ssn import convert as ssn_convert
from tal_jax.localizers.ssn import model as ssn_models
from tal_jax.localizers.ssn import serving as ssn_serving


def _counts(config):
  """(positive, incomplete, background) proposals per video."""
  m = config.model
  pos, bg, inc = ssn_losses.per_video_counts(
      m.num_per_video, m.positive_ratio, m.background_ratio,
      m.incomplete_ratio)
  return pos, inc, bg


# ------------------------------------------------------------- training


class TrainSplit:
  """A training split: SSNVideos, their assignment and per-video sources:
  frame features [num_frames, D] (memory-mapped) or frame folders."""

  def __init__(self, videos, pools, sources):
    self.videos, self.pools, self.sources = videos, pools, sources


def _assigner(config):
  return dict(ssn_targets.TRAIN_ASSIGNER, **config.model.assigner.to_dict())


def video_sources(videos, config) -> list:
  """Per video its features [num_frames, D] or its frame folder."""
  if ssn_frames.is_frames(config):
    return ssn_frames.frame_dirs(config, videos.names,
                                 thumos14.data_paths(config)['frame_dir'])
  return thumos14.load_frame_features(config, videos)


def train_arrays(videos, config) -> dict[str, np.ndarray]:
  """{'inputs': [N] video index, 'ssn_split': [N] object (the TrainSplit)}."""
  ssn_videos = [r['ssn_video'] for r in videos.records]
  pools = ssn_targets.assign_split(ssn_videos, _assigner(config))
  holder = np.empty(len(ssn_videos), object)
  split = TrainSplit(ssn_videos, pools, video_sources(videos, config))
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
  if ssn_frames.is_frames(config):
    sample['inputs'] = ssn_frames.proposal_frames(split.sources, frames,
                                                  config)
  else:
    sample['inputs'] = np.stack([np.asarray(f[i], np.float32)
                                 for f, i in zip(split.sources, frames)])
  return sample


def loss(module, params, batch, rng, config, model_state=None):
  """SSN loss of a batch; with a model_state (frame mode: the backbone's BN
  statistics) returns (loss, (metrics, new model_state))."""
  m = config.model
  pos, inc, _ = _counts(config)
  return ssn_losses.head_loss(module, params, batch, rng, pos, inc,
                              m.comp_loss_weight, m.reg_loss_weight,
                              model_state=model_state)


# ----------------------------------------------------------------- test


def _reg_norm(ssn_videos, config):
  """The split's own regression constants (upstream's test dataset's)."""
  return ssn_targets.reg_normalize_constants(
      ssn_videos, config.model.assigner.positive_iou_threshold)


def eval_arrays(videos, config) -> dict[str, np.ndarray]:
  """{'test_inputs': [N] object (`ssn_targets.test_inputs` of each video),
  'sources': [N] object (its features or frame folder, `video_sources`),
  'reg_norm': [2, 2] the split's regression constants}."""
  ssn_videos = [r['ssn_video'] for r in videos.records]
  inputs = np.empty(len(ssn_videos), object)
  sources = np.empty(len(ssn_videos), object)
  for i, (v, source) in enumerate(zip(ssn_videos,
                                      video_sources(videos, config))):
    inputs[i] = ssn_targets.test_inputs(v, config.test.test_interval)
    sources[i] = source
  return {'test_inputs': inputs, 'sources': sources,
          'reg_norm': _reg_norm(ssn_videos, config)}


def _bucket(n: int, size: int) -> int:
  return max(size, -(-n // size) * size)


def video_detections(variables, inputs, tick_feats, reg_norm, config,
                     ) -> dict[int, np.ndarray]:
  """{class index: [D, 5] relative (start, end, score, loc, size)} of one
  video from its tick features [T, D] (padded to buckets of 1024 ticks / 256
  proposals, which bound recompilation)."""
  m, t = config.model, config.test
  p = len(inputs['proposal_tick_list'])
  feats = np.zeros((_bucket(len(tick_feats), 1024), m.feat_dim), np.float32)
  feats[:len(tick_feats)] = tick_feats
  tick_list = np.zeros((_bucket(p, 256), 4), np.int32)
  tick_list[:p] = inputs['proposal_tick_list']
  scale = np.ones((len(tick_list), 2), np.float32)
  scale[:p] = inputs['scale_factor_list']
  act, comp, bbox = jax.device_get(ssn_models.ssn_test_forward(
      variables['params']['head'], feats, tick_list, scale, m.num_classes,
      ssn_models.stage(config), m.use_regression, np.int32(len(tick_feats))))
  return ssn_postprocess.video_detections(
      inputs['relative_proposal_list'], act[:p], comp[:p],
      None if bbox is None else bbox[:p], reg_norm, t.top_k, t.nms,
      m.use_regression)


def split_detections(module, variables, videos, config, arrays=None,
                     progress=False) -> dict[str, dict[int, np.ndarray]]:
  """{video: {class index: [D, 5] relative rows}} of a split, video by
  video; `arrays` are its eval_arrays (computed when None)."""
  arrays = eval_arrays(videos, config) if arrays is None else arrays
  items = list(zip(videos.names, arrays['test_inputs'], arrays['sources']))
  if progress:
    from tqdm import tqdm  # pylint: disable=g-import-not-at-top
    items = tqdm(items, desc='test', leave=False)
  out = {}
  for name, inputs, source in items:
    ticks = inputs['frame_ticks']
    if ssn_frames.is_frames(config):
      feats = ssn_frames.tick_features(module, variables, source, ticks,
                                       config)
    else:
      feats = np.asarray(source[ticks], np.float32)
    out[name] = video_detections(variables, inputs, feats, arrays['reg_norm'],
                                 config)
  return out


def class_agnostic(dets: dict[int, np.ndarray], k: int) -> np.ndarray:
  """[<= k, 3] relative (start, end, score): all classes' detections ranked
  by score (stable)."""
  rows = np.concatenate([r[:, :3] for r in dets.values()] or
                        [np.zeros((0, 3))])
  return rows[np.argsort(-rows[:, 2], kind='stable')][:k]


def predict(predictor, variables, videos, arrays) -> dict[str, np.ndarray]:
  """ModelDef.predict, the loop's validation: {video: [K, 3] class-agnostic
  proposals in seconds (start, end, score)}."""
  config = predictor.config
  dets = split_detections(predictor.module, variables, videos, config,
                          arrays)
  out = {}
  for name, rec in zip(videos.names, videos.records):
    rows = class_agnostic(dets[name], config.test.post_process_top_k)
    rows[:, :2] *= rec['duration_second']
    out[name] = rows
  return out


def test(predictor, variables, videos, workdir: str,
         quiet: bool = False) -> dict[str, float]:
  """ModelDef.test: detections of the test split -> results.json
  (`detection_results`) and metrics.json (THUMOS mAP@0.1..0.9)."""
  config = predictor.config
  dets = split_detections(predictor.module, variables, videos, config,
                          progress=runlog.show_progress(quiet))
  ssn_videos = [r['ssn_video'] for r in videos.records]
  metrics = ssn_postprocess.thumos_map(
      ssn_targets.relative_ground_truth(ssn_videos), dets,
      config.model.num_classes)
  if jax.process_index() == 0:
    errors.write_json(os.path.join(workdir, 'results.json'),
                      detection_results(videos, dets))
    errors.write_json(os.path.join(workdir, 'metrics.json'), metrics,
                      indent=2)
  runlog.info('test: ' + runlog.format_metrics(
      {k: v for k, v in metrics.items() if k in HEADLINE}), quiet)
  return metrics


HEADLINE = ('mAP@0.30', 'mAP@0.40', 'mAP@0.50', 'average_mAP')


def detection_results(videos, dets) -> dict:
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


DEFINITION = model_def.ModelDef(
    build=ssn_models.build, init_inputs=ssn_models.init_inputs,
    train_arrays=train_arrays, eval_arrays=eval_arrays, loss=loss,
    uses_features=False, epoch_arrays=epoch_arrays,
    param_labels=ssn_frames.param_labels,
    load_pretrained=ssn_frames.load_pretrained, predict=predict, test=test,
    import_state_dict=ssn_convert.import_state_dict,
    serving=ssn_serving.SERVING)

"""Writes tests/golden/features.npz: MMAction2 1.2.0's ActivityNet feature route.

Run with the reference interpreter (torch 2.13 CPU, mmaction2 1.2.0,
mmengine 0.10.7, mmcv-lite 2.1.0, opencv-contrib-python-headless 4.11.0.86;
see shared/reference/MMACTION2.md), from the repository root:

  $TAL_JAX_REFENV/bin/python tests/golden/make_features_golden.py

Everything is MMAction2's own code, on the frames of features_frames.py
(72 frames of 48x64):
* sampling: `UntrimmedSampleFrames` frame_inds for several settings;
* flow: `tools/misc/flow_extraction.py`'s `generate_flow` (TV-L1, frames
  given as BGR as cv2.VideoCapture gives them) and `flow_to_img` (bound 20);
  then the x/y images through cv2.imwrite (.jpg) and mmcv.imfrombytes
  (grayscale), as the flow feature config reads them;
* recognisers: the configs `tools/data/activitynet/tsn_extract_
  {rgb,flow}_feat_config.py` through `tools/misc/clip_feature_extraction.py`'s
  `merge_args` with `--long-video-mode` (its LongVideoDataPreprocessor: one
  clip = one sample), with `--dump-score` (TSNHead class scores) and without
  (FeatureHead, spatial/temporal avg). Made small: `ResNet.arch_settings[50]`
  = (Bottleneck, (1, 1, 1, 1)) (full widths, 2048-d), pretrained None,
  num_classes 200. Weights: ssn_frames_weights.state_dict over the model's
  own state-dict order, loaded strict (seeds RGB_SEED / FLOW_SEED).
  Test pipeline from `Resize` on (after the decode step, fed the frames
  directly): Resize(-1, 256), CenterCrop(256), FormatShape, PackActionInputs.
  The flow config's FormatShape('NCHW_Flow') is rejected by 1.2.0's
  FormatShape (not in its list of formats); 'NCHW' with modality 'Flow' is
  the 1.2.0 code path that stacks a clip's 5 x/y pairs into 10 channels.
* decoding: the example video (tal_jax.features.video, PyAV's MPEG-4
  encoder) decoded by Decord and by cv2.VideoCapture;
* pooling: `activitynet_feature_postprocessing.py`'s `pool_feature` and its
  `merge_feat` (the CSV text) on the RGB and flow scores.
* pth: torch.load of a tal_jax.convert.pth_write file (numpy writer) equals
  its arrays (`pth_check`).

npz keys:
  frames_sum; sampling/<case> int32 frame_inds, sampling/cases [C, 5]
  (total_frames, clip_len, clip_interval, frame_interval, start_index);
  flow/raw_x_sum...; flow/x, flow/y [71, 48, 64] uint8 (flow_to_img);
  flow/jpeg_x, flow/jpeg_y [71, 48, 64] uint8 (after the JPEG round trip);
  {rgb,flow}/state_names, state_shapes, seed; {rgb,flow}/check_sums;
  {rgb,flow}/inputs_sum (float64 sum of the normalised batch);
  {rgb,flow}/scores [4, 200], {rgb,flow}/feature [4, 2048];
  pool/lengths, pool/in_<L> [L, 7] float64, pool/out_<L> [100, 7];
  pool/rgb_flow [100, 400] (pool_feature of both, concatenated);
  csv (the merge_feat CSV text, as a 0-d unicode array);
  decode/mp4 (bytes of the example video, 24 frames, written with PyAV),
  decode/decord [24, 64, 96, 3] uint8 RGB: its frames as Decord (the video
  feature config) decodes them; decode/cv2_equals_decord: whether
  cv2.VideoCapture (flow_extraction.py, BGR flipped) gives the same (else
  decode/cv2 holds them).
"""

import argparse
import importlib.util
import os
import sys
import tempfile
import types
import warnings

import numpy as np

warnings.filterwarnings('ignore')
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, ROOT)
import features_frames  # noqa: E402  pylint: disable=g-import-not-at-top
import ssn_frames_weights as sfw  # noqa: E402  pylint: disable=g-import-not-at-top

RGB_SEED = 16001
FLOW_SEED = 16002
NUM_CLASSES = 200
SAMPLING_CASES = ((72, 1, 16, 1, 0), (71, 5, 16, 1, 0), (9, 1, 16, 1, 0),
                  (9, 1, 16, 1, 1), (10, 5, 16, 1, 1), (100, 5, 16, 2, 0),
                  (33, 3, 4, 1, 0), (5, 5, 2, 1, 0), (1000, 5, 16, 1, 1))
POOL_LENGTHS = (1, 2, 3, 5, 37, 250)
DECODE_FRAMES = 24


def _bypass_models_init():
  """1.2.0's mmaction.models __init__ imports a missing `drn` package: load
  the needed sub-packages without their __init__s (MMACTION2.md)."""
  import mmaction  # pylint: disable=g-import-not-at-top
  root = os.path.dirname(mmaction.__file__)
  for sub in ('models', 'models/localizers', 'models/backbones',
              'models/heads', 'models/recognizers',
              'models/data_preprocessors', 'models/losses'):
    name = 'mmaction.' + sub.replace('/', '.')
    module = types.ModuleType(name)
    module.__path__ = [os.path.join(root, sub)]
    sys.modules[name] = module
  for mod in ('losses.cross_entropy_loss', 'backbones.resnet',
              'heads.tsn_head', 'heads.feature_head',
              'recognizers.recognizer2d',
              'data_preprocessors.data_preprocessor'):
    importlib.import_module('mmaction.models.' + mod)
  from mmaction.models.data_preprocessors.data_preprocessor import ActionDataPreprocessor  # pylint: disable=g-import-not-at-top
  sys.modules['mmaction.models'].ActionDataPreprocessor = ActionDataPreprocessor
  import mmaction.datasets.transforms  # noqa  pylint: disable=g-import-not-at-top
  from mmengine.registry import init_default_scope  # pylint: disable=g-import-not-at-top
  init_default_scope('mmaction')
  return root


def _tool(root, rel):
  spec = importlib.util.spec_from_file_location(
      os.path.basename(rel)[:-3], os.path.join(root, '.mim', rel))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def sampling(out):
  from mmaction.datasets.transforms.loading import UntrimmedSampleFrames  # pylint: disable=g-import-not-at-top
  out['sampling/cases'] = np.array(SAMPLING_CASES, np.int64)
  for i, (n, clip_len, interval, step, start) in enumerate(SAMPLING_CASES):
    r = UntrimmedSampleFrames(clip_len, interval, step).transform(
        dict(total_frames=n, start_index=start))
    out[f'sampling/{i}'] = r['frame_inds']


def flow(root, frames, out):
  import cv2  # pylint: disable=g-import-not-at-top
  import mmcv  # pylint: disable=g-import-not-at-top
  tool = _tool(root, 'tools/misc/flow_extraction.py')
  raw = tool.generate_flow([f[..., ::-1].copy() for f in frames], 'tvl1')
  fx = np.stack([tool.flow_to_img(f[..., 0].copy(), 20.) for f in raw])
  fy = np.stack([tool.flow_to_img(f[..., 1].copy(), 20.) for f in raw])
  out['flow/raw_sum'] = np.float64(sum(float(np.sum(f, dtype=np.float64))
                                       for f in raw))
  out['flow/x'], out['flow/y'] = fx, fy
  with tempfile.TemporaryDirectory() as tmp:
    jx, jy = [], []
    for i in range(len(fx)):
      for img, dst in ((fx[i], jx), (fy[i], jy)):
        path = os.path.join(tmp, 'f.jpg')
        cv2.imwrite(path, img)
        with open(path, 'rb') as f:
          dst.append(mmcv.imfrombytes(f.read(), flag='grayscale'))
  out['flow/jpeg_x'], out['flow/jpeg_y'] = np.stack(jx), np.stack(jy)


def _config(root, name, dump_score):
  from mmengine.config import Config  # pylint: disable=g-import-not-at-top
  cfg = Config.fromfile(os.path.join(
      root, '.mim/tools/data/activitynet', name))
  tool = _tool(root, 'tools/misc/clip_feature_extraction.py')
  args = argparse.Namespace(
      dump_score=dump_score, multi_view=False, video_list='list.txt',
      video_root='root', long_video_mode=True, clip_interval=None,
      frame_interval=None, spatial_type='avg', temporal_type='avg',
      output_prefix=tempfile.mkdtemp())
  from mmaction.registry import MODELS  # pylint: disable=g-import-not-at-top
  # merge_args registers LongVideoDataPreprocessor on every call.
  MODELS._module_dict.pop('LongVideoDataPreprocessor', None)  # pylint: disable=protected-access
  cfg = tool.merge_args(cfg, args)
  cfg.model.backbone.pretrained = None
  if dump_score:
    cfg.model.cls_head.num_classes = NUM_CLASSES
    cfg.model.cls_head.dropout_ratio = 0.4  # inactive in eval mode.
  return cfg


def _build(cfg, sd_names, seed):
  import torch  # pylint: disable=g-import-not-at-top
  from mmaction.registry import MODELS  # pylint: disable=g-import-not-at-top
  model = MODELS.build(cfg.model).eval()
  if sd_names is None:
    names_shapes = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
    sd = sfw.state_dict(names_shapes, seed)
  else:
    names_shapes, sd = sd_names
  model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in
                         sd.items()}, strict=(sd_names is None))
  for k, v in model.state_dict().items():
    if k in sd:
      assert np.array_equal(v.numpy(), sd[k]), k
  return model, (names_shapes, sd)


def _pipeline(cfg, modality):
  from mmaction.registry import TRANSFORMS  # pylint: disable=g-import-not-at-top
  steps = []
  for t in cfg.test_dataloader.dataset.pipeline:
    if t['type'] in ('UntrimmedSampleFrames', 'RawFrameDecode', 'DecordInit',
                     'DecordDecode'):
      continue
    t = dict(t)
    if t['type'] == 'FormatShape' and modality == 'Flow':
      t['input_format'] = 'NCHW'  # 1.2.0 rejects 'NCHW_Flow'.
    steps.append(TRANSFORMS.build(t))
  return steps


def recognise(cfg, model, imgs, modality, clip_len, inds, num_clips):
  import torch  # pylint: disable=g-import-not-at-top
  results = dict(imgs=list(imgs), modality=modality, clip_len=clip_len,
                 num_clips=num_clips, frame_inds=inds, total_frames=0,
                 original_shape=imgs[0].shape[:2], img_shape=imgs[0].shape[:2],
                 start_index=0)
  for step in _pipeline(cfg, modality):
    results = step.transform(results)
  data = model.data_preprocessor(
      dict(inputs=[results['inputs']], data_samples=[results['data_samples']]),
      False)
  with torch.no_grad():
    pred = model(**data, mode='predict')
  inputs_sum = float(data['inputs'].double().sum())
  if isinstance(pred, torch.Tensor):
    return pred.numpy().reshape(num_clips, -1), inputs_sum
  return pred[0].pred_score.numpy().reshape(num_clips, -1), inputs_sum


def stream(root, out, key, config_name, modality, imgs_of, clip_len, n, seed):
  from mmaction.datasets.transforms.loading import UntrimmedSampleFrames  # pylint: disable=g-import-not-at-top
  from mmaction.models.backbones.resnet import Bottleneck, ResNet  # pylint: disable=g-import-not-at-top
  ResNet.arch_settings[50] = (Bottleneck, (1, 1, 1, 1))
  inds = UntrimmedSampleFrames(clip_len, 16).transform(
      dict(total_frames=n, start_index=0))['frame_inds']
  num_clips = len(inds) // clip_len
  imgs = imgs_of(inds)
  cfg = _config(root, config_name, True)
  model, weights = _build(cfg, None, seed)
  out[f'{key}/scores'], out[f'{key}/inputs_sum'] = recognise(
      cfg, model, imgs, modality, clip_len, inds, num_clips)
  cfg = _config(root, config_name, False)
  model, _ = _build(cfg, weights, seed)
  out[f'{key}/feature'], _ = recognise(cfg, model, imgs, modality, clip_len,
                                       inds, num_clips)
  names, shapes = sfw.encode_shapes(weights[0])
  out[f'{key}/state_names'], out[f'{key}/state_shapes'] = names, shapes
  out[f'{key}/check_sums'] = np.array(
      [np.sum(weights[1][n], dtype=np.float64) for n, _ in weights[0]])
  out[f'{key}/inds'] = inds
  out[f'{key}/seed'] = np.int64(seed)


def pooling(root, out):
  import mmengine  # pylint: disable=g-import-not-at-top
  tool = _tool(root, 'tools/data/activitynet/'
               'activitynet_feature_postprocessing.py')
  rng = np.random.default_rng(7)
  out['pool/lengths'] = np.array(POOL_LENGTHS)
  for n in POOL_LENGTHS:
    x = rng.standard_normal((n, 7))
    out[f'pool/in_{n}'] = x
    out[f'pool/out_{n}'] = tool.pool_feature(x)
  rgb, flow_scores = out['rgb/scores'], out['flow/scores']
  out['pool/rgb_flow'] = np.concatenate(
      [tool.pool_feature(rgb), tool.pool_feature(flow_scores)], -1)
  with tempfile.TemporaryDirectory() as tmp:
    for sub, x in (('rgb', rgb), ('flow', flow_scores)):
      os.makedirs(os.path.join(tmp, sub))
      mmengine.dump(x, os.path.join(tmp, sub, 'v_test.pkl'))
    tool.args = argparse.Namespace(rgb=os.path.join(tmp, 'rgb'),
                                   flow=os.path.join(tmp, 'flow'),
                                   dest=os.path.join(tmp, 'dest'),
                                   output_format='csv')
    tool.merge_feat('v_test.pkl')
    with open(os.path.join(tmp, 'dest', 'v_test.csv')) as f:
      out['csv'] = np.array(f.read())


def pth_check():
  import torch  # pylint: disable=g-import-not-at-top
  from tal_jax.convert import pth_write  # pylint: disable=g-import-not-at-top
  sd = {'backbone.conv1.conv.weight': np.arange(24, dtype=np.float32
                                                ).reshape(2, 3, 2, 2),
        'backbone.conv1.bn.num_batches_tracked': np.array(3, np.int64),
        'cls_head.fc_cls.bias': np.linspace(0, 1, 5)}
  with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, 'x.pth')
    pth_write.save_pth(path, sd)
    loaded = torch.load(path, weights_only=True)
  assert list(loaded) == list(sd)
  for k, v in sd.items():
    assert loaded[k].numpy().dtype == v.dtype and np.array_equal(
        loaded[k].numpy(), v), k


def decoding(out):
  """The example video (PyAV's encoder) as MMAction2's decoders read it:
  Decord (tsn_extract_video_feat_config.py) and cv2.VideoCapture
  (flow_extraction.py)."""
  import cv2  # pylint: disable=g-import-not-at-top
  import decord  # pylint: disable=g-import-not-at-top
  from tal_jax.features import video  # pylint: disable=g-import-not-at-top
  with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, 'example.mp4')
    video.write_video(path, video.example_frames(DECODE_FRAMES))
    with open(path, 'rb') as f:
      out['decode/mp4'] = np.frombuffer(f.read(), np.uint8)
    reader = decord.VideoReader(path, num_threads=1)
    by_decord = reader.get_batch(list(range(len(reader)))).asnumpy()
    cap, by_cv2 = cv2.VideoCapture(path), []
    ok, frame = cap.read()
    while ok:
      by_cv2.append(frame[..., ::-1])
      ok, frame = cap.read()
  out['decode/decord'] = by_decord
  # cv2's frames are stored only where they differ from Decord's.
  by_cv2 = np.stack(by_cv2)
  out['decode/cv2_equals_decord'] = np.bool_(
      by_cv2.shape == by_decord.shape and np.array_equal(by_cv2, by_decord))
  if not out['decode/cv2_equals_decord']:
    out['decode/cv2'] = by_cv2


def main():
  root = _bypass_models_init()
  frames = features_frames.frames()
  out = {'frames_sum': np.int64(frames.sum(dtype=np.int64))}
  sampling(out)
  decoding(out)
  flow(root, frames, out)
  n = len(frames)
  stream(root, out, 'rgb', 'tsn_extract_rgb_feat_config.py', 'RGB',
         lambda inds: [frames[i] for i in inds], 1, n, RGB_SEED)
  flow_imgs = np.stack([out['flow/jpeg_x'], out['flow/jpeg_y']], -1)
  stream(root, out, 'flow', 'tsn_extract_flow_feat_config.py', 'Flow',
         lambda inds: [flow_imgs[i] for i in inds], 5, n - 1, FLOW_SEED)
  pooling(root, out)
  pth_check()
  path = os.path.join(HERE, 'features.npz')
  np.savez_compressed(path, **out)
  print(f'wrote {path} ({os.path.getsize(path)} bytes)')
  for k in ('rgb/scores', 'rgb/feature', 'flow/scores', 'flow/feature'):
    print(k, out[k].shape, float(np.abs(out[k]).mean()))


if __name__ == '__main__':
  main()

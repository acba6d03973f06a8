"""Golden fixtures for THUMOS14 sliding windows from OpenTAD's own code.

Runs OpenTAD's (sming256/OpenTAD, commit 3dd7b03) pure functions:
- `ThumosSlidingDataset.get_gt`, `split_video_to_windows` and `__getitem__`
  (pipeline replaced by the identity) on real THUMOS14 validation videos of
  the embedded set, for the TSN (stride 5) and I3D (stride 4, offset 8)
  settings, train (IoA 0.9) and test windows; `compute_gt_completeness`;
  `SlidingWindowTrunc`;
- `batched_nms` (its C++ 1-d soft-NMS, `nms_1d_cpu`) on random segments;
- `UntrimmedNetTHUMOSClassifier` on the shipped uNet rows;
- `BMN.post_processing` per window then `gather_ddp_results`' merge (one
  process) on random window maps of two test videos;
- the `mAP` evaluator on the shipped thumos_gt.json test videos;
and writes tests/golden/windows_opentad.npz and windows_opentad.json.

Reference environment (`$TAL_JAX_REFENV/opentad`): torch (CPU), numpy,
pandas, mmengine, and OpenTAD's `nms_1d_cpu` extension built from
`opentad/models/utils/post_processing/nms` (`python setup.py build_ext
--inplace`, the .so put on PYTHONPATH); OPENTAD_SRC names an OpenTAD
checkout (not installed: its package __init__ needs more than these). Rerun
from the repository root:
  OPENTAD_SRC=path/to/OpenTAD PYTHONPATH=path/to/nms_build \
      "$TAL_JAX_REFENV"/opentad/bin/python tests/golden/make_windows_golden.py
"""

import gzip
import importlib.util
import json
import os
import sys
import tempfile
import types

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SRC = os.environ['OPENTAD_SRC']
CLASSES = ('BaseballPitch', 'BasketballDunk', 'Billiards', 'CleanAndJerk',
           'CliffDiving', 'CricketBowling', 'CricketShot', 'Diving',
           'FrisbeeCatch', 'GolfSwing', 'HammerThrow', 'HighJump',
           'JavelinThrow', 'LongJump', 'PoleVault', 'Shotput',
           'SoccerPenalty', 'TennisSwing', 'ThrowDiscus', 'VolleyballSpiking')


def _load(name, rel, package=None):
  """Imports one OpenTAD file as module `name` (its package __init__s pull
  in the whole model zoo, so files are loaded one by one)."""
  spec = importlib.util.spec_from_file_location(name, os.path.join(SRC, rel))
  module = importlib.util.module_from_spec(spec)
  if package:
    module.__package__ = package
  sys.modules[name] = module
  spec.loader.exec_module(module)
  return module


def _stub_package(name, **attrs):
  mod = types.ModuleType(name)
  mod.__path__ = []
  mod.__dict__.update(attrs)
  sys.modules[name] = mod
  return mod


def _opentad():
  """The OpenTAD modules used, loaded from OPENTAD_SRC."""
  from mmengine.registry import Registry  # pylint: disable=g-import-not-at-top
  registry = Registry('stub')
  _stub_package('opentad')
  _stub_package('opentad.datasets')
  _stub_package('opentad.datasets.builder', DATASETS=registry,
                PIPELINES=registry, get_class_index=None)
  _stub_package('opentad.datasets.base')
  sliding = _load('opentad.datasets.base.sliding_dataset',
                  'opentad/datasets/base/sliding_dataset.py',
                  'opentad.datasets.base')
  util = _load('opentad.datasets.base.util', 'opentad/datasets/base/util.py',
               'opentad.datasets.base')
  base = sys.modules['opentad.datasets.base']
  base.SlidingWindowDataset = sliding.SlidingWindowDataset
  base.PaddingDataset = object
  base.filter_same_annotation = util.filter_same_annotation
  thumos = _load('opentad.datasets.thumos', 'opentad/datasets/thumos.py',
                 'opentad.datasets')
  _stub_package('opentad.datasets.transforms')
  loading = _load('opentad.datasets.transforms.loading',
                  'opentad/datasets/transforms/loading.py',
                  'opentad.datasets.transforms')
  _stub_package('opentad.models')
  _stub_package('opentad.models.utils')
  pp = _stub_package('opentad.models.utils.post_processing')
  _stub_package('opentad.models.utils.post_processing.nms')
  nms = _load('opentad.models.utils.post_processing.nms.nms',
              'opentad/models/utils/post_processing/nms/nms.py')
  ppu = _load('opentad.models.utils.post_processing.utils',
              'opentad/models/utils/post_processing/utils.py')
  cls = _load('opentad.models.utils.post_processing.classifier',
              'opentad/models/utils/post_processing/classifier.py')
  pp.batched_nms = nms.batched_nms
  pp.boundary_choose = ppu.boundary_choose
  pp.convert_to_seconds = ppu.convert_to_seconds
  pp.build_classifier = None
  _stub_package('opentad.models.builder', DETECTORS=registry)
  _stub_package('opentad.models.detectors')
  two = _stub_package('opentad.models.detectors.two_stage')
  two.TwoStageDetector = torch.nn.Module
  bmn = _load('opentad.models.detectors.bmn', 'opentad/models/detectors/bmn.py',
              'opentad.models.detectors')
  _stub_package('opentad.utils', create_folder=None)
  _stub_package('opentad.cores')
  _stub_package('opentad.evaluations', build_evaluator=None)
  evb = _load('opentad.evaluations.builder', 'opentad/evaluations/builder.py',
              'opentad.evaluations')
  evb.EVALUATORS = Registry('evaluators')  # mAP registers under its name
  m_ap = _load('opentad.evaluations.mAP', 'opentad/evaluations/mAP.py',
               'opentad.evaluations')
  test_engine = _load('opentad.cores.test_engine',
                      'opentad/cores/test_engine.py', 'opentad.cores')
  return types.SimpleNamespace(
      sliding=sliding, thumos=thumos, loading=loading, nms=nms, ppu=ppu,
      cls=cls, bmn=bmn, m_ap=m_ap, test_engine=test_engine)


def _dataset(ot, stride, sample, offset, window, overlap, ioa, test_mode):
  """A ThumosSlidingDataset with the given setting (no file reading)."""
  ds = object.__new__(ot.thumos.ThumosSlidingDataset)
  ds.class_map = list(CLASSES)
  ds.filter_gt = False
  ds.test_mode = test_mode
  ds.pipeline = lambda results: results
  ds.data_path = ''
  ds.feature_stride, ds.sample_stride = stride, sample
  ds.offset_frames = offset
  ds.snippet_stride = stride * sample
  ds.fps = -1
  ds.window_size = window
  ds.window_stride = int(window * (1 - overlap))
  ds.ioa_thresh = ioa
  return ds


def _videos():
  """Real THUMOS14 records (OpenTAD form) of the embedded validation set."""
  path = os.path.join(ROOT, 'tal_jax', 'data', 'embedded',
                      'thumos14_subset.json.gz')
  with gzip.open(path, 'rt') as f:
    source = json.load(f)['validation']
  names = sorted(source)[::24][:8]
  return {n: {'duration': source[n]['duration_second'],
              'frame': int(source[n]['duration_second'] * 30.0),
              'annotations': source[n]['annotations']} for n in names}


SETTINGS = {  # name: (feature_stride, sample_stride, offset, window, overlap)
    'tsn': (1, 5, 0, 128, 0.5),
    'i3d': (4, 1, 8, 128, 0.5),
    'small': (1, 5, 0, 32, 0.25),
}


def windows_fixture(ot):
  """{setting/mode: {video: [window dicts]}} of OpenTAD's datasets."""
  out = {}
  videos = _videos()
  for name, (stride, sample, offset, window, overlap) in SETTINGS.items():
    for mode in ('train', 'test'):
      ds = _dataset(ot, stride, sample, offset, window, overlap, 0.9,
                    mode == 'test')
      per_video = {}
      for vid, info in videos.items():
        anno = {} if mode == 'test' else ds.get_gt(info)
        if anno is None:
          continue
        ds.data_list = ds.split_video_to_windows(vid, info, anno)
        per_video[vid] = [_window_item(ds[i]) for i in range(len(ds))]
      out[f'{name}/{mode}'] = {'setting': [stride, sample, offset, window,
                                           overlap], 'videos': per_video}
  out['videos'] = videos
  return out


def _window_item(r):
  item = {'feature_start_idx': int(r['feature_start_idx']),
          'feature_end_idx': int(r['feature_end_idx']),
          'window_start_frame': int(r['window_start_frame'])}
  if 'gt_segments' in r:
    item['gt_segments'] = np.asarray(r['gt_segments'], np.float32).tolist()
    item['gt_labels'] = np.asarray(r['gt_labels']).tolist()
  return item


def completeness_fixture(ot, rng):
  gt = np.sort(rng.uniform(0, 300, (40, 2)), axis=1).astype(np.float32)
  gt[::7, 1] = gt[::7, 0]  # zero-length gts
  anchors = np.array([[0, 127], [60, 190], [100, 101], [250, 400]],
                     np.float32)
  comp, trunc = zip(*[ot.sliding.compute_gt_completeness(gt, a)
                      for a in anchors])
  return {'ioa_gt': gt, 'ioa_anchors': anchors,
          'ioa_completeness': np.stack(comp), 'ioa_truncated': np.stack(trunc)}


def trunc_fixture(ot, rng):
  feats = rng.normal(size=(150, 6)).astype(np.float32)
  out = {'trunc_feats': feats}
  t = ot.loading.SlidingWindowTrunc(with_mask=True)
  for i, (start, end) in enumerate([(0, 127), (64, 191), (100, 130)]):
    r = t({'feats': torch.from_numpy(feats), 'window_size': 128,
           'feature_start_idx': start, 'feature_end_idx': end})
    out[f'trunc_{i}_bounds'] = np.array([start, end])
    out[f'trunc_{i}_feats'] = r['feats'].numpy()
    out[f'trunc_{i}_mask'] = r['masks'].numpy()
  return out


NMS_CASES = {  # name: (count, sigma, min_score, max_seg_num, voting)
    'default': (300, 0.3, 0.0001, 200, 0.95),
    'novote': (300, 0.3, 0.0001, 200, 0.0),
    'prune': (200, 0.5, 0.3, 50, 0.0),
    'short': (60, 0.3, 0.2, 7, 0.9),
}


def nms_fixture(ot, rng):
  out = {}
  for name, (count, sigma, min_score, max_num, vote) in NMS_CASES.items():
    start = rng.uniform(0, 100, count)
    segs = np.stack([start, start + rng.uniform(0.5, 20, count)], 1)
    segs = np.round(segs, 1).astype(np.float32)
    scores = rng.uniform(0.01, 1, count).astype(np.float32)
    labels = rng.integers(0, 3, count)
    s, c, l = ot.nms.batched_nms(
        torch.from_numpy(segs), torch.from_numpy(scores),
        torch.from_numpy(labels), min_score=min_score, max_seg_num=max_num,
        use_soft_nms=True, multiclass=False, sigma=sigma, voting_thresh=vote)
    out.update({f'nms_{name}_in_segs': segs, f'nms_{name}_in_scores': scores,
                f'nms_{name}_in_labels': labels,
                f'nms_{name}_params': np.array([sigma, min_score, max_num,
                                                vote]),
                f'nms_{name}_segs': s.numpy(), f'nms_{name}_scores': c.numpy(),
                f'nms_{name}_labels': l.numpy()})
  return out


def _unet_file(tmp):
  """A uNet_test.npy with the shipped rows in place (zeros elsewhere)."""
  with np.load(os.path.join(ROOT, 'tal_jax', 'data', 'embedded',
                            'thumos14_untrimmednet_test.npz')) as z:
    table = np.zeros((1574, 101), np.float32)
    table[z['video_numbers'] - 1] = z['scores']
  path = os.path.join(tmp, 'uNet_test.npy')
  np.save(path, table)
  return path


def fusion_fixture(ot, unet, rng):
  clf = ot.cls.UntrimmedNetTHUMOSClassifier(path=unet, topk=2)
  segs = np.round(rng.uniform(0, 50, (5, 2)), 2).astype(np.float32)
  scores = rng.uniform(0, 1, 5).astype(np.float32)
  out = {'fusion_segs': segs, 'fusion_scores': scores}
  for vid in ('video_test_0000004', 'video_test_0000131'):
    s, l, c = clf(vid, torch.from_numpy(segs), torch.from_numpy(scores))
    out[f'fusion_{vid}_segs'] = s.numpy()
    out[f'fusion_{vid}_labels'] = np.array([CLASSES.index(x) for x in l])
    out[f'fusion_{vid}_scores'] = c.numpy()
  return out


def _logits(rng, shape, smooth):
  x = rng.normal(size=shape)
  k = np.ones(smooth) / smooth
  x = np.apply_along_axis(lambda r: np.convolve(r, k, 'same'), -1, x)
  return (x * 4).astype(np.float32)


def bmn_maps(rng):
  """Random BMN outputs of windows of two test videos, and their metas."""
  tscale, dscale, stride = 32, 16, 5
  videos = {'video_test_0000004': 33.826, 'video_test_0000131': 21.3}
  metas, tem, iou = [], [], []
  for vid, duration in videos.items():
    frames = int(duration * 30)
    for start in range(0, max(1, len(range(0, frames, stride)) - 8), 24):
      metas.append({'video_name': vid, 'fps': frames / duration,
                    'snippet_stride': stride, 'window_start_frame': start * 5,
                    'duration': duration, 'offset_frames': 0})
      tem.append(_logits(rng, (2, tscale), 3))
      iou.append(_logits(rng, (2, dscale, tscale), 2))
  return metas, np.stack(tem), np.stack(iou), dscale


def bmn_fixture(ot, unet, maps, proposal_max=None):
  """BMN.post_processing per window and the merge of gather_ddp_results;
  proposal_max set: PseudoClassifier and that many per window and video."""
  metas, tem, iou, dscale = maps
  nms_cfg = dict(use_soft_nms=True, sigma=0.3, max_seg_num=200,
                 min_score=0.0001, multiclass=False, voting_thresh=0.95)
  if proposal_max:
    nms_cfg['max_seg_num'] = proposal_max
    ext = ot.cls.PseudoClassifier(pseudo_label='')
  else:
    ext = ot.cls.UntrimmedNetTHUMOSClassifier(path=unet, topk=2)
  from mmengine.config import ConfigDict  # pylint: disable=g-import-not-at-top
  post_cfg = ConfigDict(nms=nms_cfg, sliding_window=True)
  stub = types.SimpleNamespace(roi_head=types.SimpleNamespace(
      proposal_generator=types.SimpleNamespace(dscale=dscale,
                                               tscale=tem.shape[-1])))
  results = {}
  for i in range(len(metas)):  # one window per batch, as results extend
    r = ot.bmn.BMN.post_processing(
        stub, (torch.from_numpy(tem[i:i + 1]), torch.from_numpy(iou[i:i + 1])),
        metas[i:i + 1], post_cfg, ext)
    for k, v in r.items():
      results.setdefault(k, []).extend(v)
  torch.distributed.all_gather_object = lambda out, obj: out.__setitem__(
      0, obj)
  return ot.test_engine.gather_ddp_results(1, results, post_cfg)


def map_fixture(ot, rng, tmp):
  """OpenTAD's mAP on the test videos of thumos_gt.json (shipped in
  tests/data) against perturbed and random detections."""
  with gzip.open(os.path.join(ROOT, 'tests', 'data', 'thumos_gt.json.gz'),
                 'rt') as f:
    gt = json.load(f)
  test = sorted(v for v, r in gt['database'].items() if r['subset'] == 'test')
  for r in gt['database'].values():  # its segments are strings; OpenTAD's floats
    for a in r['annotations']:
      a['segment'] = [float(x) for x in a['segment']]
  dets = {}
  for vid in test[::3]:
    items = []
    for a in gt['database'][vid]['annotations']:
      s, e = float(a['segment'][0]), float(a['segment'][1])
      for _ in range(2):
        j = rng.normal(0, 0.15 * (e - s), 2)
        label = a['label'] if rng.random() < 0.8 else CLASSES[
            rng.integers(20)]
        items.append({'segment': [round(s + j[0], 2), round(e + j[1], 2)],
                      'label': label, 'score': round(float(rng.random()), 4)})
    for _ in range(5):
      s = rng.uniform(0, 100)
      items.append({'segment': [round(s, 2), round(s + rng.uniform(1, 10), 2)],
                    'label': CLASSES[rng.integers(20)],
                    'score': round(float(rng.random()) * 0.5, 4)})
    dets[vid] = items
  path = os.path.join(tmp, 'gt.json')
  with open(path, 'w') as f:
    json.dump(gt, f)
  ev = ot.m_ap.mAP(ground_truth_filename=path,
                   prediction_filename={'results': dets}, subset='test',
                   tiou_thresholds=[0.3, 0.4, 0.5, 0.6, 0.7], thread=2)
  metrics = ev.evaluate()
  return {'detections': dets,
          'metrics': {k: float(v) for k, v in metrics.items()}}


def main():
  ot = _opentad()
  rng = np.random.default_rng(2014)
  with tempfile.TemporaryDirectory() as tmp:
    unet = _unet_file(tmp)
    arrays = {**completeness_fixture(ot, rng), **trunc_fixture(ot, rng),
              **nms_fixture(ot, rng), **fusion_fixture(ot, unet, rng)}
    maps = bmn_maps(rng)
    arrays['bmn_tem_probs'] = torch.sigmoid(torch.from_numpy(maps[1])).numpy()
    arrays['bmn_iou_probs'] = torch.sigmoid(torch.from_numpy(maps[2])).numpy()
    js = {'windows': windows_fixture(ot),
          'bmn': {'metas': maps[0], 'dscale': maps[3],
                  'detections': bmn_fixture(ot, unet, maps),
                  'proposals': bmn_fixture(ot, unet, maps, proposal_max=300)},
          'map': map_fixture(ot, rng, tmp)}
  np.savez_compressed(os.path.join(HERE, 'windows_opentad.npz'), **arrays)
  with gzip.GzipFile(os.path.join(HERE, 'windows_opentad.json.gz'), 'wb',
                     mtime=0) as f:
    f.write(json.dumps(js).encode())
  print('wrote windows_opentad.npz, windows_opentad.json.gz')


if __name__ == '__main__':
  main()

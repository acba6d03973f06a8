r"""Times tal_jax's AR@AN and ActivityNet mAP against MMAction2's functions.

  python experiments/bench_eval.py [--videos 4728] [--per-video 100]

Ground truth: the real ActivityNet validation annotations (4,728 videos,
tests/data/). Proposals: `--per-video` random segments per
video with scores rounded to 3 decimals (ties); detections: the same
segments labelled with the video's first gt class. The inputs go to a temp
.npz; MMAction2 1.2.0 runs on them in a subprocess of the reference
environment ($TAL_JAX_REFENV, experiments/README.md) (`average_recall_at_avg_proposals` and `ActivityNetLocalization.evaluate`,
file parsing excluded). tal_jax is timed through its dict-level API
(`ar_an_metrics`, `activitynet_map`: conversion from dicts included), median
of 3. Prints a table with the speed-up and the largest metric difference.
"""

import argparse
import csv
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# pylint: disable=g-import-not-at-top,wrong-import-position
import tal_jax  # pylint: disable=unused-import
import numpy as np
from tal_jax import evaluation
import refenv

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                    'tests', 'data')

REFERENCE = r'''
import json, sys, time
import numpy as np
np.trapz = np.trapezoid
from mmaction.evaluation.functional.accuracy import average_recall_at_avg_proposals
from mmaction.evaluation.functional.eval_detection import ActivityNetLocalization
d = dict(np.load(sys.argv[1]))
vids, names = list(d['video_ids']), list(d['class_names'])
gt = {v: d['gt_segments'][d['gt_video'] == i] for i, v in enumerate(vids)}
props = {v: d['proposals'][i] for i, v in enumerate(vids)}
t = time.perf_counter()
recall, _, _, auc = average_recall_at_avg_proposals(gt, props, int(d['proposals'].shape[0] * d['proposals'].shape[1]), 100)
t_ar = time.perf_counter() - t
ar = {f'AR@{n}': float(np.mean(recall[:, n - 1])) for n in (1, 5, 10, 100)}
ar['AUC'] = auc
anno = {'v_' + v: {'annotations': [{'segment': s.tolist(), 'label': names[l]}
        for s, l in zip(d['gt_segments'][d['gt_video'] == i], d['gt_label'][d['gt_video'] == i])]}
        for i, v in enumerate(vids)}
res = {v: [{'segment': p[:2].tolist(), 'score': float(p[2]), 'label': names[d['det_label'][i]]}
       for p in d['proposals'][i]] for i, v in enumerate(vids)}
json.dump(anno, open(sys.argv[2] + '/gt.json', 'w'))
json.dump({'results': res}, open(sys.argv[2] + '/det.json', 'w'))
anet = ActivityNetLocalization(sys.argv[2] + '/gt.json', sys.argv[2] + '/det.json')
t = time.perf_counter()
m, avg = anet.evaluate()
t_map = time.perf_counter() - t
print(json.dumps(dict(t_ar=t_ar, t_map=t_map, ar=ar, average_mAP=float(avg), mAP=m.tolist())))
'''


def make_inputs(num_videos, per_video, seed=0):
  """Real validation gt + random proposals/detections, as arrays."""
  with gzip.open(os.path.join(DATA, 'video_info_new.csv.gz'), 'rt') as f:
    val = [r['video'] for r in csv.DictReader(f) if r['subset'] == 'validation']
  with gzip.open(os.path.join(DATA, 'anet_anno_action.json.gz'), 'rt') as f:
    anno = json.load(f)
  val = val[:num_videos]
  names = sorted({a['label'] for v in val for a in anno[v]['annotations']})
  index = {n: i for i, n in enumerate(names)}
  gv, gs, gl, dl = [], [], [], []
  rng = np.random.default_rng(seed)
  props = np.zeros((len(val), per_video, 3))
  for i, v in enumerate(val):
    anns = anno[v]['annotations']
    for a in anns:
      gv.append(i)
      gs.append(a['segment'])
      gl.append(index[a['label']])
    dur = anno[v]['duration_second']
    a, b = rng.uniform(0, dur, (2, per_video))
    props[i, :, 0], props[i, :, 1] = np.minimum(a, b), np.maximum(a, b)
    props[i, :, 2] = np.round(rng.random(per_video), 3)
    dl.append(index[anns[0]['label']])
  return dict(video_ids=np.array([v[2:] for v in val]),
              class_names=np.array(names), gt_video=np.array(gv),
              gt_segments=np.array(gs, np.float64), gt_label=np.array(gl),
              proposals=props, det_label=np.array(dl))


def run_tal_jax(d):
  """(AR seconds, mAP seconds, ar dict, map dict), median of 3."""
  vids, names = list(d['video_ids']), list(d['class_names'])
  gt = {v: d['gt_segments'][d['gt_video'] == i] for i, v in enumerate(vids)}
  props = {v: d['proposals'][i] for i, v in enumerate(vids)}
  gt_dicts = {v: [{'segment': s.tolist(), 'label': names[l]} for s, l in zip(
      d['gt_segments'][d['gt_video'] == i], d['gt_label'][d['gt_video'] == i])]
              for i, v in enumerate(vids)}
  dets = {v: [{'segment': p[:2].tolist(), 'score': float(p[2]),
               'label': names[d['det_label'][i]]} for p in d['proposals'][i]]
          for i, v in enumerate(vids)}
  t_ar, t_map = [], []
  for _ in range(3):
    t = time.perf_counter()
    ar = evaluation.ar_an_metrics(gt, props)
    t_ar.append(time.perf_counter() - t)
    t = time.perf_counter()
    mp = evaluation.activitynet_map(gt_dicts, dets)
    t_map.append(time.perf_counter() - t)
  return float(np.median(t_ar)), float(np.median(t_map)), ar, mp


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--videos', type=int, default=4728)
  parser.add_argument('--per-video', type=int, default=100)
  args = parser.parse_args()
  ref_python = refenv.python(refenv.MMACTION2_120)
  d = make_inputs(args.videos, args.per_video)
  warnings.simplefilter('ignore')
  with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, 'inputs.npz')
    np.savez(path, **d)
    out = subprocess.run([ref_python, '-c', REFERENCE, path, tmp],
                         capture_output=True, text=True, check=True)
    ref = json.loads(out.stdout.strip().splitlines()[-1])
  t_ar, t_map, ar, mp = run_tal_jax(d)
  ar_diff = max(abs(ar[k] - ref['ar'][k]) for k in ar)
  map_diff = max([abs(mp['average_mAP'] - ref['average_mAP'])] + [
      abs(mp[f'mAP@{t:.2f}'] - m)
      for t, m in zip(evaluation.ANET_TIOU_THRESHOLDS, ref['mAP'])])
  n = f'{len(d["video_ids"])} videos x {args.per_video}'
  print(f'| metric ({n}) | MMAction2 1.2.0 (s) | tal_jax (s) | speed-up |'
        ' max abs diff |')
  print('|---|---|---|---|---|')
  print(f'| AR@AN + AUC | {ref["t_ar"]:.2f} | {t_ar:.3f} | '
        f'{ref["t_ar"] / t_ar:.0f}x | {ar_diff:.1e} |')
  print(f'| ActivityNet mAP (10 tIoU) | {ref["t_map"]:.2f} | {t_map:.3f} | '
        f'{ref["t_map"] / t_map:.0f}x | {map_diff:.1e} |')
  print(f'AUC {ar["AUC"]:.4f} (ref {ref["ar"]["AUC"]:.4f}), average mAP '
        f'{mp["average_mAP"]:.6f} (ref {ref["average_mAP"]:.6f})')


if __name__ == '__main__':
  main()

r"""MMAction2 1.2.0's ActivityNet metrics on a file of score ties, under this numpy.

  python experiments/numpy_ties.py      # a Python with numpy and, installed with
                                        # --no-deps, mmaction2==1.2.0

MMAction2 orders proposals by score with numpy's default (unstable) argsort
(`average_recall_at_avg_proposals`: `argsort()[::-1]`) and a prediction's gts by
IoU the same way (`compute_average_precision_detection`); numpy 1.x and 2.x
order equal keys differently. This runs MMAction2's own metric functions
(mmaction/evaluation/functional/accuracy.py and eval_detection.py, loaded from
the installed wheel without importing the mmaction package, which needs torch
and mmcv; mmengine's logger is replaced by one that logs nothing) on the
official sample detection file (tests/data/, every score 1.0, so the tie order
alone decides which proposals count) against the ActivityNet-1.3 validation
ground truth (tests/data/), as MMAction2's ANetMetric (AR@AN,
max_avg_proposals 100; the detections as proposals) and
ActivityNetLocalization (mAP) call them. Prints one JSON line.
"""

import csv
import gzip
import importlib.util
import json
import os
import sys
import tempfile
import types

import numpy as np

if not hasattr(np, 'trapz'):
  np.trapz = np.trapezoid  # numpy 2.4 removed np.trapz, which MMAction2 calls.

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                    'tests', 'data')


def _read(name):
  with gzip.open(os.path.join(DATA, name + '.gz'), 'rt') as f:
    return f.read()


def mmaction2_functional():
  """MMAction2's accuracy and eval_detection modules, loaded from their files
  as a stand-alone package (nothing else of mmaction is imported)."""
  spec = importlib.util.find_spec('mmaction')
  if spec is None:
    sys.exit('error: mmaction2 is not installed in this Python '
             '(pip install --no-deps mmaction2==1.2.0)')
  folder = os.path.join(spec.submodule_search_locations[0], 'evaluation',
                        'functional')
  logging = types.ModuleType('mmengine.logging')
  logging.MMLogger = types.SimpleNamespace(get_current_instance=lambda: None)
  logging.print_log = lambda *args, **kwargs: None
  sys.modules['mmengine'] = types.ModuleType('mmengine')
  sys.modules['mmengine.logging'] = logging
  package = types.ModuleType('mm_functional')
  package.__path__ = [folder]
  sys.modules['mm_functional'] = package
  modules = {}
  for name in ('accuracy', 'eval_detection'):
    module_spec = importlib.util.spec_from_file_location(
        f'mm_functional.{name}', os.path.join(folder, f'{name}.py'))
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_spec.name] = module
    module_spec.loader.exec_module(module)
    modules[name] = module
  return modules['accuracy'], modules['eval_detection']


def main():
  accuracy, eval_detection = mmaction2_functional()
  val = {r['video'] for r in csv.DictReader(_read('video_info_new.csv')
                                            .splitlines())
         if r['subset'] == 'validation'}
  anno = {k: v for k, v in json.loads(_read('anet_anno_action.json')).items()
          if k in val}
  results = json.loads(_read('sample_detection_prediction.json'))['results']
  # ANetMetric's arrays: gt rows [start, end, label] (a string array, as
  # there), proposals [start, end, score] keyed by the id without 'v_'.
  ground_truth = {k[2:]: np.array([[*a['segment'], a['label']]
                                   for a in v['annotations']])
                  for k, v in anno.items()}
  proposals = {k: np.array([[*p['segment'], p['score']] for p in v])
               for k, v in results.items()}
  missing = [k for k in ground_truth if k not in proposals]
  recall, _, _, auc = accuracy.average_recall_at_avg_proposals(
      ground_truth, proposals, sum(len(v) for v in results.values()),
      max_avg_proposals=100, temporal_iou_thresholds=np.linspace(0.5, 0.95, 10))
  with tempfile.TemporaryDirectory() as tmp:
    gt_path = os.path.join(tmp, 'anet_anno_val.json')
    with open(gt_path, 'w') as f:
      json.dump(anno, f)
    det_path = os.path.join(tmp, 'det.json')
    with open(det_path, 'w') as f:
      f.write(_read('sample_detection_prediction.json'))
    m_ap, average_m_ap = eval_detection.ActivityNetLocalization(
        gt_path, det_path, tiou_thresholds=np.linspace(0.5, 0.95, 10)
    ).evaluate()
  print(json.dumps({
      'numpy': np.__version__, 'gt_videos_without_proposals': len(missing),
      'AR@1': float(recall[:, 0].mean()), 'AR@5': float(recall[:, 4].mean()),
      'AR@10': float(recall[:, 9].mean()),
      'AR@100': float(recall[:, 99].mean()), 'AUC': float(auc),
      'mAP@0.50': float(m_ap[0]), 'mAP@0.95': float(m_ap[-1]),
      'average_mAP': float(average_m_ap)}))


if __name__ == '__main__':
  main()

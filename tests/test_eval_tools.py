"""Tests for the evaluation CLIs: evaluate, report_map, convert_proposal_format,
plot."""

import json
import os
import subprocess
import sys

import tal_jax  # pylint: disable=unused-import
import pytest

from tal_jax import results_io as rio
from tal_jax.tools import convert_proposal_format
from tal_jax.tools import evaluate
from tal_jax.tools import plot
from tal_jax.tools import report_map
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _write(path, obj):
  with open(path, 'w') as f:
    json.dump(obj, f)
  return str(path)


@pytest.fixture
def files(tmp_path):
  anno = {'v_a': {'duration_second': 40.0, 'duration_frame': 1200,
                  'fps': 30.0, 'annotations': [
                      {'segment': [0.0, 10.0], 'label': 'x'},
                      {'segment': [20.0, 30.0], 'label': 'y'}]}}
  props = {'a': [{'segment': [0.0, 6.2], 'score': 0.9},
                 {'segment': [20.0, 30.0], 'score': 0.5},
                 {'segment': [0.0, 10.0], 'score': 0.3}]}
  dets = {'a': [{'segment': [0.0, 10.0], 'score': 0.9, 'label': 'x'},
                {'segment': [20.8, 30.0], 'score': 0.8, 'label': 'y'}]}
  return dict(
      gt=_write(tmp_path / 'anno.json', anno),
      proposals=_write(tmp_path / 'p.json', {'results': props}),
      detections=_write(tmp_path / 'd.json', {'results': dets}),
      classes=str(tmp_path / 'classes.txt'), tmp=tmp_path)


def test_evaluate_cli(files, capsys):
  out = str(files['tmp'] / 'metrics.json')
  evaluate.main(['--gt', files['gt'], '--proposals', files['proposals'],
                 '--detections', files['detections'], '--out', out])
  with open(out) as f:
    m = json.load(f)
  assert list(m) == ['AR@1', 'AR@5', 'AR@10', 'AR@100', 'AUC'] + [
      f'mAP@{t / 100:.2f}' for t in range(50, 100, 5)] + ['average_mAP']
  # 3 proposals, AN 100: point j keeps min(3 * j / 100 * 100 / 3, 3) = j.
  # AR@1: only the 0.62-IoU proposal -> gt x at 0.5, 0.55, 0.6 -> 3/20.
  assert m['AR@1'] == pytest.approx(0.15)
  assert m['AR@5'] == 1.0 and m['AR@100'] == 1.0
  # y's detection has IoU 0.92: a tp up to tIoU 0.9, not at 0.95.
  assert m['mAP@0.90'] == 1.0 and m['mAP@0.95'] == 0.5
  assert m['average_mAP'] == pytest.approx(0.95)
  assert 'average_mAP' in capsys.readouterr().out


def test_evaluate_cli_thumos14(tmp_path, real_data):
  gt_path = real_data('thumos_gt.json')
  gt = rio.read_ground_truth(gt_path, subset='test')
  dets = {v: [dict(a, score=1.0) for a in anns] for v, anns in gt.items()}
  det_path = str(tmp_path / 'det.json')
  rio.write_results(det_path, dets)
  m = evaluate.main(['--gt', gt_path, '--subset', 'test', '--detections',
                     det_path, '--dataset', 'thumos14'])
  assert list(m) == ['mAP@0.30', 'mAP@0.40', 'mAP@0.50', 'mAP@0.60',
                     'mAP@0.70', 'average_mAP']
  assert m['average_mAP'] == 1.0  # the ground truth scores itself perfectly


def test_report_map_top1_and_fusion(files, tmp_path):
  cls = _write(tmp_path / 'cls.json', {'results': {'v_a': [
      {'label': 'y', 'score': 0.4}, {'label': 'x', 'score': 0.6}]}})
  det = str(tmp_path / 'det.json')
  m = report_map.main(['--gt', files['gt'], '--proposals', files['proposals'],
                       '--classification', cls, '--det-output', det])
  dets = rio.read_results(det)['a']
  assert [d['label'] for d in dets] == ['x'] * 3
  assert [d['score'] for d in dets] == [0.9, 0.5, 0.3]
  # x: the 0.62-IoU proposal ranks first (tp at <= 0.6), the exact one is
  # third: AP 1 at 0.5..0.6, else 1/3. y has no detection: AP 0.
  assert m['mAP@0.50'] == pytest.approx(0.5)
  assert m['mAP@0.95'] == pytest.approx(1 / 6)
  report_map.main(['--gt', files['gt'], '--proposals', files['proposals'],
                   '--classification', cls, '--det-output', det,
                   '--top-k', '2', '--fusion', 'multiply'])
  dets = rio.read_results(det)['a']
  assert [d['label'] for d in dets] == ['x'] * 3 + ['y'] * 3
  assert dets[3]['score'] == pytest.approx(0.9 * 0.4)


def test_top_k_classes_tie_takes_the_later_one():
  preds = [{'label': 'p', 'score': 1.0}, {'label': 'q', 'score': 1.0}]
  assert report_map.top_k_classes(preds, 1)[0]['label'] == 'q'


def test_report_map_real_sample_files(tmp_path, real_data):
  det = str(tmp_path / 'det.json')
  m = report_map.main([
      '--gt', real_data('anet_anno_action.json'), '--subset',
      'validation', '--video-info', real_data('video_info_new.csv'),
      '--proposals', real_data('sample_detection_prediction.json'),
      '--classification', real_data('sample_classification_prediction.json'),
      '--det-output', det])
  # MMAction2's cuhk17_top1 labelling + ActivityNetLocalization on the same
  # files (the proposals' own labels removed first) gives this.
  assert abs(m['average_mAP'] - 0.9757192155943472) < 1e-9


def test_convert_proposal_format(files):
  with open(files['classes'], 'w') as f:
    f.write('action\nx\ny\n')
  out = str(files['tmp'] / 'list.txt')
  convert_proposal_format.main([
      '--ann-file', files['gt'], '--activity-index-file', files['classes'],
      '--proposal-file', files['proposals'], '--formatted-proposal-file', out])
  with open(out) as f:
    lines = f.read().splitlines()
  assert lines[:7] == ['#0', 'a', '1200', '30.0', '2', '0 0.0 10.0',
                       '1 20.0 30.0']
  # f'{np.float32}' prints the float64 digits, as MMAction2's writer does.
  assert lines[7:] == ['3', '0 0.6200000047683716 1.0 0.0 6.2',
                       '1 1.0 1.0 20.0 30.0', '0 1.0 1.0 0.0 10.0']
  (video,) = rio.read_proposal_list(out)
  assert video.proposals.shape == (3, 5)


def test_plot_png(files):
  curve = str(files['tmp'] / 'ar.png')
  plot.main(['ar-an', '--gt', files['gt'], '--proposals', files['proposals'],
             files['proposals'], '--labels', 'one', 'two', '--out', curve])
  timeline = str(files['tmp'] / 'tl.png')
  plot.main(['timeline', '--gt', files['gt'], '--proposals',
             files['proposals'], '--video', 'v_a', '--out', timeline])
  for path in (curve, timeline):
    with open(path, 'rb') as f:
      assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    assert os.path.getsize(path) > 5000


def test_cli_bad_input_exits_2(files):
  res = subprocess.run(
      [sys.executable, '-m', 'tal_jax.tools.evaluate', '--gt', files['gt'],
       '--detections', files['proposals']],
      capture_output=True, text=True, cwd=ROOT, check=False)
  assert res.returncode == 2
  assert res.stderr.startswith('error: ') and 'video a' in res.stderr
  assert len(res.stderr.strip().splitlines()) == 1

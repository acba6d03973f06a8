"""Tests for tal_jax.results_io: results JSON, ground truth, proposal lists."""

import json
import os

import tal_jax  # pylint: disable=unused-import
import numpy as np
import pytest

from tal_jax import results_io as rio
from tal_jax.errors import TalError

GOLDEN = os.path.join(os.path.dirname(__file__), 'golden')
TAG_LIST = 'activitynet1.2_tag_val_normalized_proposal_list.txt'


def _write(path, obj):
  with open(path, 'w') as f:
    f.write(obj if isinstance(obj, str) else json.dumps(obj))
  return str(path)


def test_results_round_trip(tmp_path):
  results = {'a': [{'segment': [1.5, 3.0], 'score': 0.25, 'label': 'x'}],
             'b': []}
  path = str(tmp_path / 'r.json')
  rio.write_results(path, results)
  with open(path) as f:
    raw = json.load(f)
  assert raw['version'] == 'VERSION 1.3' and raw['external_data'] == {}
  assert rio.read_results(path) == results
  np.testing.assert_array_equal(rio.proposal_arrays(results)['a'],
                                [[1.5, 3.0, 0.25]])
  assert rio.proposal_arrays(results)['b'].shape == (0, 3)


@pytest.mark.parametrize('content, match', [
    ('{"results": {"a": [{"segment": [1], "score": 1}]}}', 'video a.*segment'),
    ('{"results": {"a": [{"segment": [1, 2]}]}}', 'video a.*score'),
    ('{"results": {"a": {}}}', 'video a.*list'),
    ('{"version": 1}', 'no "results"'),
    ('{not json', 'not valid JSON'),
])
def test_bad_results_name_file_and_video(tmp_path, content, match):
  path = _write(tmp_path / 'bad.json', content)
  with pytest.raises(TalError, match=match) as e:
    rio.read_results(path)
  assert 'bad.json' in str(e.value)


def test_read_ground_truth_anno_format_with_subset(tmp_path):
  anno = {'v_a': {'duration_second': 10.0, 'annotations': [
      {'segment': [1, 2], 'label': 'x'}]},
          'v_b': {'duration_second': 20.0, 'annotations': []}}
  path = _write(tmp_path / 'anno.json', anno)
  csv_path = _write(tmp_path / 'info.csv',
                    'video,numFrame,seconds,fps,rfps,subset,featureFrame\n'
                    'v_a,1,1,30,30,validation,1\nv_b,1,1,30,30,training,1\n')
  gt = rio.read_ground_truth(path)
  assert gt == {'a': [{'segment': [1.0, 2.0], 'label': 'x'}], 'b': []}
  assert list(rio.read_ground_truth(path, 'validation', csv_path)) == ['a']
  with pytest.raises(TalError, match='video info csv'):
    rio.read_ground_truth(path, 'validation')
  assert rio.read_durations(path) == {'a': 10.0, 'b': 20.0}
  np.testing.assert_array_equal(rio.gt_segments(gt)['a'], [[1., 2.]])


def test_read_ground_truth_activitynet_format(tmp_path):
  db = {'version': 'VERSION 1.3', 'database': {
      'a': {'subset': 'validation', 'duration': 5.0,
            'annotations': [{'segment': [0, 1], 'label': 'x'}]},
      'b': {'subset': 'training', 'annotations': []}}}
  path = _write(tmp_path / 'gt.json', db)
  assert list(rio.read_ground_truth(path)) == ['a', 'b']
  assert list(rio.read_ground_truth(path, 'validation')) == ['a']
  with pytest.raises(TalError, match="subset 'testing'"):
    rio.read_ground_truth(path, 'testing')
  bad = _write(tmp_path / 'bad.json', {'database': {'c': {'annotations': [
      {'segment': [0, 1]}]}}})
  with pytest.raises(TalError, match='bad.json: video c: annotation without'):
    rio.read_ground_truth(bad)


def test_format_proposal_list_matches_mmaction2():
  with open(os.path.join(GOLDEN, 'metrics_proposal_list.json')) as f:
    d = json.load(f)
  text = ''.join(rio.format_proposal_list_video(
      i, v['video_id'], v['num_frames'], v['fps'], v['gts'], v['proposals'])
                 for i, v in enumerate(d['videos']))
  assert text == d['text']


def test_proposal_list_round_trip(tmp_path):
  block = rio.format_proposal_list_video(
      0, 'vid', 100, 25.0, [[0., 10., 2], [20., 30., 0]],
      [[0., 10., .9], [5., 25., .5], [40., 50., .1]])
  assert block.splitlines()[:5] == ['#0', 'vid', '100', '25.0', '2']
  path = str(tmp_path / 'list.txt')
  rio.write_proposal_list(path, [block, block.replace('#0', '#1')])
  videos = rio.read_proposal_list(path)
  assert len(videos) == 2 and videos[0].video_id == 'vid'
  np.testing.assert_array_equal(videos[0].gts, [[2, 0, 10], [0, 20, 30]])
  p = videos[0].proposals
  np.testing.assert_allclose(p[0], [2, 1, 1, 0, 10])
  # [5, 25]: IoU 0.2 with both gts; IoP 0.25 with both; label of gt 0 (2).
  np.testing.assert_allclose(p[1], [2, 0.2, 0.25, 5, 25], rtol=1e-6)
  np.testing.assert_array_equal(p[2], [0, 0, 0, 40, 50])


def test_read_real_tag_proposal_list(real_data):
  videos = rio.read_proposal_list(real_data(TAG_LIST))
  assert len(videos) == 2383
  first = videos[0]
  assert (first.video_id, first.num_frames, first.fps) == ('nEOpfvJ7g_g', 1, 1)
  np.testing.assert_array_equal(first.gts, [[58, 0.0, 0.9728]])
  assert first.proposals.shape == (15, 5)
  np.testing.assert_array_equal(first.proposals[0],
                                [58, 0.9684, 0.9996, 0.0, 0.9414])
  assert sum(len(v.proposals) for v in videos) == 120148


@pytest.mark.parametrize('text, match', [
    ('# 0\nvid\n1\n1\n1\n3 0.1\n0\n', r'list.txt:6: video vid: expected 3'),
    ('# 0\nvid\n1\n1\nx\n', r'list.txt:5: video vid: expected the number'),
    ('# 0\nvid\n1\n1\n0\n2\n1 0 0 0 1\n', r'list.txt:8: video block ends'),
    ('vid\n', r'list.txt:1: expected a "# index" line'),
])
def test_bad_proposal_list(tmp_path, text, match):
  path = _write(tmp_path / 'list.txt', text)
  with pytest.raises(TalError, match=match):
    rio.read_proposal_list(path)


def test_missing_file():
  with pytest.raises(TalError, match='nope.json: cannot read'):
    rio.read_results('/nonexistent/nope.json')


def test_format_keeps_int_rows_like_mmaction2():
  # MMAction2 builds np.array(rows): all-int rows print as ints.
  block = rio.format_proposal_list_video(3, 'v', 10, 1.0, [[0, 0, 4]],
                                         [[1.5, 2.5, 0.5]])
  assert block.splitlines()[5:] == ['4 0 0', '1', '0 0 0 1.5 2.5']

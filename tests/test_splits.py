"""Tests for tal_jax/data/splits.py and tools/prepare_annotations.py."""

import hashlib
import json
import os

import pytest

import tal_jax  # pylint: disable=unused-import
from tal_jax import errors
from tal_jax.data import splits
from tal_jax.tools import prepare_annotations

GOLDEN = os.path.join(os.path.dirname(__file__), 'golden', 'anet_splits.json')
HEADER = 'video,numFrame,seconds,fps,rfps,subset,featureFrame\n'


def _record(duration=10.0, segments=((1.0, 2.0),)):
  return {'duration_second': duration, 'duration_frame': 300,
          'annotations': [{'segment': list(s), 'label': 'a'}
                          for s in segments],
          'feature_frame': 288}


def _write(tmp_path, anno, info_rows, header=HEADER):
  anno_path = tmp_path / 'anno.json'
  info_path = tmp_path / 'info.csv'
  anno_path.write_text(json.dumps(anno))
  info_path.write_text(header + ''.join(r + '\n' for r in info_rows))
  return str(anno_path), str(info_path)


def test_real_files_match_mmaction2_bytes(tmp_path, real_data):
  counts = prepare_annotations.main(
      ['--anno', real_data('anet_anno_action.json'), '--video-info',
       real_data('video_info_new.csv'), '--out-dir', str(tmp_path)])
  assert counts == {'train': 9649, 'val': 4728, 'test': 4851, 'full': 19228}
  with open(GOLDEN) as f:
    golden = json.load(f)
  for split in splits.SPLITS:
    with open(splits.split_path(str(tmp_path), split), 'rb') as f:
      raw = f.read()
    # Hashes of the files MMAction2 1.2.0's process_annotations.py writes.
    assert hashlib.sha256(raw).hexdigest() == golden[split]['sha256'], split
  with open(splits.split_path(str(tmp_path), 'train')) as f:
    train = json.load(f)
  assert list(train)[0] == 'v_---9CpRcKoU'
  assert train['v_---9CpRcKoU'] == {
      'duration_second': 14.07, 'duration_frame': 418,
      'annotations': [{'segment': [0.01, 12.644405017160688],
                       'label': 'Drinking beer'}],
      'feature_frame': 400, 'fps': 30.0, 'rfps': 29.7085998579}
  with open(splits.split_path(str(tmp_path), 'test')) as f:
    test = json.load(f)
  assert test['v_--tFD65KaK4'] == {
      'duration_second': 86.425, 'duration_frame': 2163, 'annotations': [],
      'feature_frame': 2160, 'fps': 25.0, 'rfps': 25.0274804744}


def test_small_split_order_and_fields(tmp_path):
  anno = {'v_b': _record(), 'v_a': _record(20.0), 'v_c': _record(),
          'v_unused': _record()}
  rows = ['v_c,1,1,30.0,29.97,testing,1', 'v_a,1,1,25,25.5,training,1',
          'v_b,1,1,24.0,23.9,validation,1']
  anno_path, info_path = _write(tmp_path, anno, rows)
  counts = splits.prepare_annotations(anno_path, info_path, str(tmp_path))
  assert counts == {'train': 1, 'val': 1, 'test': 1, 'full': 3}
  with open(splits.split_path(str(tmp_path), 'full')) as f:
    full = json.load(f)
  assert list(full) == ['v_c', 'v_a', 'v_b']  # CSV order, v_unused dropped
  assert full['v_a']['fps'] == 25.0 and full['v_a']['rfps'] == 25.5
  assert list(full['v_a']) == ['duration_second', 'duration_frame',
                               'annotations', 'feature_frame', 'fps', 'rfps']
  assert not [p for p in os.listdir(tmp_path) if p.startswith('.')]


@pytest.mark.parametrize('rows,header,message', [
    (['v_x,1,1,30,30,training,1'], HEADER, 'video v_x is not in the annotat'),
    (['v_a,1,1,30,30,train,1'], HEADER, "video v_a: unknown subset 'train'"),
    (['v_a,1,1,30,30,training,1', 'v_a,1,1,30,30,training,1'], HEADER,
     'video v_a listed twice'),
    (['v_a,1,1,abc,30,training,1'], HEADER, "video v_a: fps must be a finite"),
    (['v_a,1,1,30,30,training,1'], 'video,numFrame,seconds,fps,subset\n',
     "missing column(s) ['rfps']"),
    (['v_a,1,1,30'], HEADER, 'line 2 has too few columns'),
])
def test_bad_video_info(tmp_path, rows, header, message):
  anno_path, info_path = _write(tmp_path, {'v_a': _record()}, rows, header)
  with pytest.raises(errors.TalError, match='info.csv') as e:
    splits.prepare_annotations(anno_path, info_path, str(tmp_path / 'out'))
  assert message in str(e.value) and '\n' not in str(e.value)
  assert not os.path.exists(tmp_path / 'out')


def test_bad_annotation_and_missing_files(tmp_path):
  anno_path, info_path = _write(
      tmp_path, {'v_a': _record(segments=((3.0, 2.0),))},
      ['v_a,1,1,30,30,training,1'])
  with pytest.raises(errors.TalError, match='anno.json: video v_a'):
    splits.prepare_annotations(anno_path, info_path, str(tmp_path))
  anno_path, _ = _write(tmp_path, {'v_a': _record()}, [])
  with pytest.raises(errors.TalError, match='video info file not found'):
    splits.prepare_annotations(anno_path, str(tmp_path / 'no.csv'),
                               str(tmp_path))


def test_cli_exit_code(tmp_path, capsys):
  anno_path, info_path = _write(tmp_path, {}, ['v_a,1,1,30,30,training,1'])
  with pytest.raises(SystemExit) as e:
    errors.run_cli(lambda: prepare_annotations.main(
        ['--anno', anno_path, '--video-info', info_path,
         '--out-dir', str(tmp_path)]))
  assert e.value.code == 2
  assert capsys.readouterr().err.count('\n') == 1

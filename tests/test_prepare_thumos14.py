"""tools.prepare_thumos14: the official THUMOS14 files -> OpenTAD's json.

The official files are written here from the embedded THUMOS14 records
(themselves built from the release's files), in both layouts the tool reads:
the per-class folders and G-TAD's csv. (On the real release, checked by hand:
200 validation + 213 test videos, the two layouts give the same json.)
"""

import json
import os

import pytest

import tal_jax  # noqa: F401

from tal_jax import errors
from tal_jax.data import thumos14
from tal_jax.data import thumos14_windows
from tal_jax.tools import prepare_thumos14

SUFFIX = {'validation': 'val', 'test': 'test'}


def _official(root, layout, splits=('validation', 'test')):
  """Writes the embedded records as official files; returns them."""
  os.makedirs(root, exist_ok=True)
  records = {s: thumos14.embedded_records(s) for s in splits}
  for split, recs in records.items():
    suffix = SUFFIX[split]
    with open(os.path.join(root, f'th14_{suffix}_durations.txt'), 'w') as f:
      for video, r in recs.items():
        f.write(f'/data/TH14/{video}.mp4\n{r["duration_second"]:.6f}\n')
    rows = [(v, a['label'], *a['segment']) for v, r in recs.items()
            for a in r['annotations']]
    if layout == 'csv':
      with open(os.path.join(root, f'{suffix}_Annotation.csv'), 'w') as f:
        f.write('video,type,type_idx,start,end,startFrame,endFrame\n')
        for v, label, s, e in rows:
          f.write(f'{v},{label},0,{s},{e},{int(s * 30)},{int(e * 30)}\n')
    else:
      folder = os.path.join(root, f'temporal_annotations_{split}')
      os.makedirs(folder, exist_ok=True)
      for v, label, s, e in rows:
        with open(os.path.join(folder, f'{label}_{suffix}.txt'), 'a') as f:
          f.write(f'{v}  {s} {e}\n')
  return records


@pytest.mark.parametrize('layout', ['class_files', 'csv'])
def test_official_files_become_opentad_json(tmp_path, layout, capsys):
  records = _official(str(tmp_path / 'src'), layout)
  out = str(tmp_path / 'anno.json')
  prepare_thumos14.main(['--src', str(tmp_path / 'src'), '--out', out])
  assert capsys.readouterr().out == (
      f'wrote {out}: {len(records["validation"])} validation videos (subset '
      f'training), {len(records["test"])} test videos (subset validation)\n')
  for split, subset in (('validation', 'training'), ('test', 'validation')):
    db = thumos14_windows.read_database(out, subset, '')
    assert set(db) == set(records[split])
    for video, rec in records[split].items():
      got = db[video]
      assert got['duration'] == pytest.approx(rec['duration_second'])
      assert got['frame'] == round(got['duration'] * 30)
      key = lambda a: (a['segment'][0], a['segment'][1], a['label'])
      assert sorted(map(key, got['annotations'])) == sorted(
          map(key, rec['annotations']))


def test_fps_sets_the_frame_count(tmp_path):
  _official(str(tmp_path / 'src'), 'csv')
  out = str(tmp_path / 'anno.json')
  anno = prepare_thumos14.main(['--src', str(tmp_path / 'src'), '--out', out,
                                '--fps', '25'])
  rec = next(iter(anno['database'].values()))
  assert rec['frame'] == round(rec['duration'] * 25)
  with open(out) as f:
    assert json.load(f) == anno


def test_bad_official_files_are_one_line(tmp_path):
  src = tmp_path / 'src'
  _official(str(src), 'csv')
  out = str(tmp_path / 'anno.json')
  run = lambda: prepare_thumos14.main(['--src', str(src), '--out', out])
  # A reversed segment names the video.
  csv_path = src / 'test_Annotation.csv'
  text = csv_path.read_text()
  lines = text.splitlines()
  video, label, _, start, end = lines[1].split(',')[:5]
  lines[1] = ','.join([video, label, '0', end, start, '0', '0'])
  csv_path.write_text('\n'.join(lines) + '\n')
  with pytest.raises(errors.TalError, match=(
      f'video {video}: {label} segment \\[{end}, {start}\\] is reversed')):
    run()
  # A number that is not one names the file and line.
  lines[1] = ','.join([video, label, '0', 'nan', end, '0', '0'])
  csv_path.write_text('\n'.join(lines) + '\n')
  with pytest.raises(errors.TalError, match=(
      r'test_Annotation.csv, line 2: start is nan$')):
    run()
  csv_path.write_text(text)
  # A video without a duration.
  dur = src / 'th14_test_durations.txt'
  dur_lines = dur.read_text().splitlines()
  gone = os.path.splitext(os.path.basename(dur_lines[0]))[0]
  dur.write_text('\n'.join(dur_lines[2:]) + '\n')
  with pytest.raises(errors.TalError, match=(
      f'video {gone} is annotated but has no test duration')):
    run()
  os.remove(dur)
  with pytest.raises(errors.TalError, match='no test durations'):
    run()
  assert not os.path.exists(out)
  with pytest.raises(errors.TalError, match='--fps must be > 0'):
    prepare_thumos14.main(['--src', str(src), '--out', out, '--fps', '0'])

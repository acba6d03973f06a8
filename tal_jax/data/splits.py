"""ActivityNet split files, built as MMAction2's `process_annotations.py` does.

MMAction2 (tools/data/activitynet/process_annotations.py) merges
``anet_anno_action.json`` (19,228 records, all splits) with
``video_info_new.csv`` (columns video, numFrame, seconds, fps, rfps, subset,
featureFrame) into ``anet_anno_{train,val,test,full}.json``:

- videos are taken in the CSV's row order; each record is the JSON record with
  two fields added, ``fps`` and ``rfps`` (floats parsed from the CSV);
- subset ``training`` -> train, ``validation`` -> val, ``testing`` -> test, and
  every CSV row goes to full; JSON videos absent from the CSV are dropped;
- the CSV's numFrame/seconds/featureFrame columns are not used (the JSON's
  duration_frame/duration_second/feature_frame stay);
- files are written with ``json.dump`` defaults (no indentation), so tal_jax's
  output is byte-identical to MMAction2's on the same inputs.

Differences (input checks only, no effect on valid inputs): a CSV video missing
from the JSON, a missing column, an unknown subset, a duplicate video or a
non-numeric fps raise TalError naming the file and video, where MMAction2 stops
with a KeyError or silently keeps a video in full only.
"""

import csv
import math
import os
from typing import Any

from tal_jax import errors
from tal_jax.data import activitynet

# CSV subset value -> split name used in the output file name.
SUBSET_TO_SPLIT = {'training': 'train', 'validation': 'val',
                   'testing': 'test'}
SPLITS = ('train', 'val', 'test', 'full')
VIDEO_INFO_COLUMNS = ('video', 'fps', 'rfps', 'subset')


def read_video_info(path: str) -> list[dict[str, str]]:
  """Reads `video_info_new.csv`; returns its rows as dicts, in file order."""
  if not os.path.isfile(path):
    raise errors.TalError(f'video info file not found: {path}')
  try:
    with open(path, newline='') as f:
      reader = csv.DictReader(f)
      header = reader.fieldnames or []
      missing = [c for c in VIDEO_INFO_COLUMNS if c not in header]
      if missing:
        raise errors.TalError(f'{path}: missing column(s) {missing}; header '
                              f'is {header}')
      rows = list(reader)
  except (UnicodeDecodeError, csv.Error) as e:
    raise errors.TalError(f'{path}: not a readable CSV ({e})') from None
  for i, row in enumerate(rows):
    if any(row.get(c) is None for c in VIDEO_INFO_COLUMNS):
      raise errors.TalError(f'{path}: line {i + 2} has too few columns')
  return rows


def _float_field(path: str, row: dict[str, str], key: str) -> float:
  try:
    value = float(row[key])
  except ValueError:
    value = math.nan
  if not math.isfinite(value):
    raise errors.TalError(f'{path}: video {row["video"]}: {key} must be a '
                          f'finite number, got {row[key]!r}')
  return value


def build_splits(annotations: dict[str, dict[str, Any]],
                 video_info: list[dict[str, str]],
                 info_path: str = 'video_info') -> dict[str, dict[str, Any]]:
  """Splits annotation records by the video info rows.

  Args:
    annotations: {'v_<id>': record} as in anet_anno_action.json.
    video_info: rows of video_info_new.csv (dicts with VIDEO_INFO_COLUMNS).
    info_path: the CSV's path, for error messages.

  Returns:
    {'train'|'val'|'test'|'full': {'v_<id>': record + fps + rfps}}, in CSV
    order. Records are new dicts; `annotations` is not modified.
  """
  out = {s: {} for s in SPLITS}
  for row in video_info:
    name = row['video']
    if name in out['full']:
      raise errors.TalError(f'{info_path}: video {name} listed twice')
    if name not in annotations:
      raise errors.TalError(
          f'{info_path}: video {name} is not in the annotation file')
    split = SUBSET_TO_SPLIT.get(row['subset'])
    if split is None:
      raise errors.TalError(
          f'{info_path}: video {name}: unknown subset {row["subset"]!r} '
          f'(expected one of {sorted(SUBSET_TO_SPLIT)})')
    record = dict(annotations[name])
    record['fps'] = _float_field(info_path, row, 'fps')
    record['rfps'] = _float_field(info_path, row, 'rfps')
    out['full'][name] = record
    out[split][name] = record
  return out


def split_path(out_dir: str, split: str) -> str:
  """Path of one output file, e.g. DIR/anet_anno_train.json."""
  return os.path.join(out_dir, f'anet_anno_{split}.json')


def prepare_annotations(anno_file: str, video_info_file: str,
                        out_dir: str) -> dict[str, int]:
  """Writes anet_anno_{train,val,test,full}.json to `out_dir` atomically.

  Returns:
    {split: number of videos}.
  """
  annotations = activitynet.load_annotations(anno_file)
  rows = read_video_info(video_info_file)
  splits = build_splits(annotations, rows, video_info_file)
  for split in SPLITS:
    errors.write_json(split_path(out_dir, split), splits[split])
  return {s: len(v) for s, v in splits.items()}

"""The official THUMOS14 annotation files -> OpenTAD's annotation json.

The THUMOS14 release annotates each class in its own file
(`temporal_annotations_{validation,test}/<Class>_{val,test}.txt`, lines
`video start end` in seconds; `Ambiguous_*.txt` marks unclear parts); G-TAD and
others ship the same rows as `{val,test}_Annotation.csv` (video, type,
type_idx, start, end, startFrame, endFrame). Video lengths come from
`th14_{val,test}_durations.txt` / `{validation,test}_durations.txt` (a video
path or file name, then its seconds, one per line).

OpenTAD's BMN THUMOS14 configs read one json instead, `thumos_14_anno.json`:
{'database': {video: {'subset': 'training' (THUMOS14 validation videos) or
'validation' (test videos), 'duration': s, 'frame': frames, 'annotations':
[{'label': class, 'segment': [s, e]}]}}}, Ambiguous rows kept (its dataset
drops them when it builds the labels). `anno_database` builds that from the
official files, so `configs/*_thumos14.py` run on the THUMOS14 release as it
is downloaded.
"""

import csv
import glob
import os
from typing import Callable

from tal_jax import errors

# Official split name -> (file suffix, OpenTAD subset).
SPLITS = {'validation': ('val', 'training'), 'test': ('test', 'validation')}


def _number(text: str, path: str, lineno: int, what: str) -> float:
  try:
    value = float(text)
  except ValueError:
    raise errors.TalError(f'{path}, line {lineno}: {what} {text!r} is not a '
                          'number') from None
  if value != value or value in (float('inf'), float('-inf')):
    raise errors.TalError(f'{path}, line {lineno}: {what} is {text}')
  return value


def read_durations(path: str) -> dict[str, float]:
  """{video: seconds} of a durations file (pairs of lines: a video path or
  file name, then its length in seconds)."""
  with open(path) as f:
    lines = [line.strip() for line in f if line.strip()]
  if len(lines) % 2:
    raise errors.TalError(f'{path}: {len(lines)} lines, expected pairs of '
                          '(video, seconds)')
  out = {}
  for i in range(0, len(lines), 2):
    name = os.path.splitext(os.path.basename(lines[i]))[0]
    seconds = _number(lines[i + 1], path, i + 2, 'duration')
    if seconds <= 0:
      raise errors.TalError(f'{path}, line {i + 2}: video {name} lasts '
                            f'{seconds} s')
    out[name] = seconds
  return out


def read_annotation_csv(path: str) -> list[tuple[str, str, float, float]]:
  """(video, label, start_s, end_s) rows of a {val,test}_Annotation.csv."""
  with open(path, newline='') as f:
    reader = csv.DictReader(f)
    missing = {'video', 'type', 'start', 'end'} - set(reader.fieldnames or ())
    if missing:
      raise errors.TalError(f'{path}: no column {", ".join(sorted(missing))} '
                            '(expected video,type,type_idx,start,end,...)')
    return [(r['video'], r['type'],
             _number(r['start'], path, i + 2, 'start'),
             _number(r['end'], path, i + 2, 'end'))
            for i, r in enumerate(reader)]


def read_class_files(folder: str, suffix: str
                     ) -> list[tuple[str, str, float, float]]:
  """(video, label, start_s, end_s) rows of the per-class files
  <folder>/<Class>_<suffix>.txt (lines `video start end`)."""
  paths = sorted(glob.glob(os.path.join(folder, f'*_{suffix}.txt')))
  if not paths:
    raise errors.TalError(f'{folder}: no <Class>_{suffix}.txt file')
  rows = []
  for path in paths:
    label = os.path.basename(path)[:-len(f'_{suffix}.txt')]
    with open(path) as f:
      for lineno, line in enumerate(f, 1):
        parts = line.split()
        if not parts:
          continue
        if len(parts) != 3:
          raise errors.TalError(f'{path}, line {lineno}: expected `video '
                                f'start end`, got {line.strip()!r}')
        rows.append((parts[0], label,
                     _number(parts[1], path, lineno, 'start'),
                     _number(parts[2], path, lineno, 'end')))
  return rows


def _first(src: str, names: list[str], what: str) -> str:
  for name in names:
    if os.path.exists(os.path.join(src, name)):
      return os.path.join(src, name)
  raise errors.TalError(f'{src}: no {what} ({" or ".join(names)})')


def split_rows(src: str, split: str):
  """(annotation rows, {video: seconds}) of one official split found in
  `src`: the per-class folder, else the G-TAD csv."""
  suffix, _ = SPLITS[split]
  folder = os.path.join(src, f'temporal_annotations_{split}')
  if os.path.isdir(folder):
    rows = read_class_files(folder, suffix)
  else:
    rows = read_annotation_csv(_first(
        src, [f'{suffix}_Annotation.csv'],
        f'{split} annotations (temporal_annotations_{split}/ or '
        f'{suffix}_Annotation.csv)'))
  durations = read_durations(_first(
      src, [f'th14_{suffix}_durations.txt', f'{split}_durations.txt'],
      f'{split} durations'))
  return rows, durations


def anno_database(src: str, frames_of: Callable[[str, float], int]) -> dict:
  """OpenTAD's thumos_14_anno.json content of the official files in `src`:
  every annotated video of both splits; `frames_of(video, seconds)` gives
  its frame count. TalError naming the video for one without a duration or
  with a reversed or negative segment (segments past the end are kept, as
  the release has them)."""
  database = {}
  for split, (_, subset) in SPLITS.items():
    rows, durations = split_rows(src, split)
    for video, label, start, end in sorted(rows, key=lambda r: (r[0], r[2],
                                                                 r[3], r[1])):
      if video not in durations:
        raise errors.TalError(f'{src}: video {video} is annotated but has no '
                              f'{split} duration')
      seconds = durations[video]
      if not 0 <= start <= end:
        raise errors.TalError(f'{src}: video {video}: {label} segment '
                              f'[{start}, {end}] is reversed or negative')
      rec = database.setdefault(video, {
          'subset': subset, 'duration': seconds,
          'frame': int(frames_of(video, seconds)), 'annotations': []})
      rec['annotations'].append({'label': label, 'segment': [start, end]})
  return {'database': dict(sorted(database.items()))}

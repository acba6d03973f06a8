"""Result and annotation files in the formats MMAction2 and ActivityNet use.

* ActivityNet results JSON: `{"version", "results": {video_id: [{"segment":
  [s, e], "score", "label"?}]}, "external_data": {}}` (`read_results`,
  `write_results`).
* Ground truth (`read_ground_truth`), either MMAction2's anno json
  `{"v_<id>": {duration_second, ..., annotations: [{segment, label}]}}` (the
  `v_` is dropped, as MMAction2 does) or ActivityNet's
  `{"database": {id: {subset, duration?, annotations: [...]}}}`.
* The SSN / P-GCN proposal list (`format_proposal_list_video` as MMAction2's
  tools/data/activitynet/convert_proposal_format.py writes it, and
  `read_proposal_list`, which also reads the normalised TAG lists).

Every malformed input raises TalError naming the file and the video or key.
"""

import csv
import dataclasses
import json
import math
import zipfile
from typing import Mapping, Sequence

import numpy as np

from tal_jax import errors
from tal_jax.errors import TalError
from tal_jax.evaluation import pairwise_temporal_iou


def _show(name) -> str:
  """A video id as it can stand in a one-line message (at most 80
  characters: a whole mismatched file can sit on one line)."""
  text = name if isinstance(name, str) and name.isprintable() else repr(name)
  return text if len(text) <= 80 else text[:77] + '...'


def _excerpt(line: str, limit: int = 60) -> str:
  """repr of a line's first `limit` characters, '...' marking a cut."""
  line = line.strip()
  return repr(line) if len(line) <= limit else repr(line[:limit]) + '...'


def read_json(path):
  """Parsed JSON of `path`; TalError if missing or not JSON."""
  try:
    with open(path) as f:
      return json.load(f)
  except OSError as e:
    raise TalError(f'{path}: cannot read ({e.strerror})') from None
  except UnicodeDecodeError:
    raise TalError(f'{path}: not a UTF-8 text file') from None
  except json.JSONDecodeError as e:
    raise TalError(f'{path}: not valid JSON ({e.msg} at line {e.lineno})'
                   ) from None


def _check_segment(item, path, vid, need_score):
  """Validates one result/annotation dict; returns it unchanged (ints stay
  ints, so files are rewritten as MMAction2's tools would)."""
  where = f'{path}: video {_show(vid)}'
  if not isinstance(item, Mapping):
    raise TalError(f'{where}: entry is not an object')
  seg = item.get('segment')
  try:
    if not isinstance(seg, (list, tuple)) or len(seg) != 2:
      raise TypeError
    start, end = (float(x) for x in seg)
  except (TypeError, ValueError, OverflowError):
    raise TalError(f'{where}: "segment" must be [start, end], got {seg!r}'
                   ) from None
  if not (math.isfinite(start) and math.isfinite(end)):
    raise TalError(f'{where}: "segment" {[start, end]} is not finite')
  if need_score:
    try:
      score = float(item['score'])
    except (KeyError, TypeError, ValueError, OverflowError):
      raise TalError(f'{where}: missing or bad "score"') from None
    if not math.isfinite(score):
      raise TalError(f'{where}: "score" {score} is not finite')
  return item


def read_results(path):
  """{video_id: [{'segment': [s, e], 'score', 'label'?}]} of a results JSON."""
  data = read_json(path)
  results = data.get('results') if isinstance(data, Mapping) else None
  if not isinstance(results, Mapping):
    raise TalError(f'{path}: no "results" object (ActivityNet results JSON)')
  out = {}
  for vid, items in results.items():
    if not isinstance(items, list):
      raise TalError(f'{path}: video {_show(vid)}: results must be a list')
    out[vid] = [_check_segment(it, path, vid, True) for it in items]
  return out


def write_results(path, results, version='VERSION 1.3', external_data=None):
  """Writes an ActivityNet results JSON atomically."""
  errors.write_json(path, {'version': version, 'results': results,
                           'external_data': external_data or {}})


def read_video_info_csv(path):
  """{video (as in the csv, e.g. 'v_x'): row dict} of video_info_new.csv."""
  try:
    with open(path, newline='') as f:
      rows = list(csv.DictReader(f))
  except OSError as e:
    raise TalError(f'{path}: cannot read ({e.strerror})') from None
  if rows and 'video' not in rows[0]:
    raise TalError(f'{path}: no "video" column')
  return {r['video']: r for r in rows}


def _annotations(record, path, vid):
  anns = record.get('annotations') if isinstance(record, Mapping) else None
  if not isinstance(anns, list):
    raise TalError(f'{path}: video {_show(vid)}: no "annotations" list')
  out = []
  for ann in anns:
    item = _check_segment(ann, path, vid, False)
    if 'label' not in item:
      raise TalError(f'{path}: video {_show(vid)}: annotation without "label"')
    start, end = (float(x) for x in item['segment'])
    if end < start:
      raise TalError(f'{path}: video {_show(vid)}: segment '
                     f'{list(item["segment"])} ends before it starts')
    out.append({'segment': list(item['segment']), 'label': item['label']})
  return out


def _subset_of(vid, record, info, path):
  if 'subset' in record:
    return record['subset']
  if info is None:
    raise TalError(f'{path}: no "subset" in video {_show(vid)}; pass the video info '
                   'csv to filter by subset')
  row = info.get(vid) or info.get('v_' + vid) or info.get(vid[2:])
  if row is None:
    raise TalError(f'video info csv has no row for video {_show(vid)} of {path}')
  return row.get('subset')


def read_ground_truth(path, subset=None, video_info_csv=None):
  """{video_id: [{'segment': [s, e], 'label'}]} from either gt format.

  Args:
    path: MMAction2 anno json (ids lose their `v_`) or ActivityNet json.
    subset: e.g. 'validation'; None keeps every video.
    video_info_csv: video_info_new.csv, for the subset of anno-json videos.
  """
  data = read_json(path)
  if not isinstance(data, Mapping):
    raise TalError(f'{path}: ground truth must be a JSON object')
  database = data.get('database', data)
  if not isinstance(database, Mapping):
    raise TalError(f'{path}: "database" must be an object')
  info = read_video_info_csv(video_info_csv) if video_info_csv else None
  out = {}
  for vid, record in database.items():
    if subset is not None and _subset_of(vid, record, info, path) != subset:
      continue
    key = vid[2:] if 'database' not in data and vid.startswith('v_') else vid
    out[key] = _annotations(record, path, vid)
  if not out:
    raise TalError(f'{path}: no ground-truth videos'
                   + (f' in subset {subset!r}' if subset else ''))
  return out


def read_durations(path):
  """{video_id: duration seconds} from either gt format (ids as above)."""
  data = read_json(path)
  database = data.get('database', data)
  out = {}
  for vid, rec in database.items():
    key = vid[2:] if 'database' not in data and vid.startswith('v_') else vid
    dur = rec.get('duration_second', rec.get('duration'))
    if dur is not None:
      out[key] = float(dur)
  return out


def gt_segments(ground_truth):
  """{video_id: [G, 2] float64 seconds} of `read_ground_truth` output."""
  return {v: np.array([a['segment'] for a in anns], np.float64).reshape(-1, 2)
          for v, anns in ground_truth.items()}


def proposal_arrays(results):
  """{video_id: [P, 3] (start, end, score)} of `read_results` output."""
  return {v: np.array([it['segment'] + [it['score']] for it in items],
                      np.float64).reshape(-1, 3)
          for v, items in results.items()}


# ------------------------------------------------------ SSN proposal list


@dataclasses.dataclass
class ProposalListVideo:
  """One video of a proposal list.

  gts: [G, 3] (label, start, end); proposals: [P, 5] (label, best_iou,
  overlap_self, start, end). Times are frames, or fractions of the video in
  normalised lists (then num_frames is 1).
  """
  video_id: str
  num_frames: float
  fps: float
  gts: np.ndarray
  proposals: np.ndarray


def _proposal_label(tiou, overlap, labels):
  """Per proposal: best IoU, best IoP and the label MMAction2 assigns."""
  best_iou, best_overlap = tiou.max(axis=0), overlap.max(axis=0)
  label_iou = labels[tiou.argmax(axis=0)]
  label_overlap = labels[overlap.argmax(axis=0)]
  label = np.where((label_iou != label_overlap) & (label_iou == 0),
                   label_overlap, label_iou)
  return best_iou, best_overlap, label


def format_proposal_list_video(index, video_id, num_frames, fps, gts,
                               proposals):
  """One video's block, as MMAction2's `dump_formatted_proposal` writes it.

  Args:
    index: running video number (`#index` line).
    gts: [G, 3] (start, end, label index) seconds.
    proposals: [P, >=2] (start, end, ...) seconds.

  Returns:
    The text, lines: #index, id, num_frames, fps, G, G x `label start end`,
    P, P x `label best_iou best_overlap start end` (`0 0 0 start end` for a
    proposal touching no gt). A video without gts lists every proposal so.
  """
  # np.array of the rows as given: all-int rows print as ints, as upstream.
  gts = np.array(gts).reshape(-1, 3)
  proposals = (np.array(proposals).reshape(len(proposals), -1)
               if len(proposals) else np.zeros((0, 2)))
  lines = [f'#{index}', f'{video_id}', f'{num_frames}', f'{fps}',
           f'{gts.shape[0]}']
  lines += [f'{int(g[2])} {g[0]} {g[1]}' for g in gts]
  lines.append(f'{proposals.shape[0]}')
  if len(gts) and len(proposals):
    tiou, overlap = pairwise_temporal_iou(proposals[:, :2].astype(float),
                                          gts[:, :2].astype(float), True)
    best_iou, best_overlap, label = _proposal_label(tiou, overlap, gts[:, 2])
  else:
    best_iou = best_overlap = label = np.zeros(len(proposals), np.float32)
  for p, iou, ovl, lab in zip(proposals, best_iou, best_overlap, label):
    if iou == 0 and ovl == 0:
      lines.append(f'0 0 0 {p[0]} {p[1]}')
    else:
      lines.append(f'{int(lab)} {iou} {ovl} {p[0]} {p[1]}')
  return '\n'.join(lines) + '\n'


def _parse_numbers(line, count, path, lineno, vid, nan_ok=()):
  """`count` finite numbers of a line (NaN allowed in columns `nan_ok`)."""
  parts = line.split()
  try:
    if len(parts) != count:
      raise ValueError
    numbers = [float(x) for x in parts]
  except ValueError:
    raise TalError(f'{path}:{lineno}: video {_show(vid)}: expected {count} numbers, '
                   f'got {_excerpt(line)}') from None
  if not all(math.isfinite(x) or (j in nan_ok and math.isnan(x))
             for j, x in enumerate(numbers)):
    raise TalError(f'{path}:{lineno}: video {_show(vid)}: non-finite number '
                   f'in {_excerpt(line)}')
  return numbers


def _parse_count(line, path, lineno, vid, what):
  try:
    return int(line)
  except ValueError:
    raise TalError(f'{path}:{lineno}: video {_show(vid)}: expected the number of '
                   f'{what}, got {_excerpt(line)}') from None


def _parse_block(lines, start, path):
  """Parses one video block; lines[start] is its first line after '#'."""
  def line(i):
    if i >= len(lines) or lines[i].startswith('#'):
      raise TalError(f'{path}:{i + 1}: video block ends early')
    return lines[i]

  vid = line(start).strip()
  num_frames = _parse_numbers(line(start + 1), 1, path, start + 2, vid)[0]
  fps = _parse_numbers(line(start + 2), 1, path, start + 3, vid)[0]
  i = start + 3
  num_gts = _parse_count(line(i), path, i + 1, vid, 'gts')
  gts = [_parse_numbers(line(i + 1 + k), 3, path, i + 2 + k, vid)
         for k in range(num_gts)]
  for k, (_, g_start, g_end) in enumerate(gts):
    if g_end < g_start:
      raise TalError(f'{path}:{i + 2 + k}: video {_show(vid)}: ground-truth '
                     f'segment ends (frame {g_end:g}) before it starts '
                     f'(frame {g_start:g})')
  i += 1 + num_gts
  num_props = _parse_count(line(i), path, i + 1, vid, 'proposals')
  # MMAction2 writes best_overlap (and IoU) 0/0 = nan for a zero-length
  # proposal: accepted there, as upstream reads it; positions must be finite.
  props = [_parse_numbers(line(i + 1 + k), 5, path, i + 2 + k, vid,
                          nan_ok=(1, 2))
           for k in range(num_props)]
  video = ProposalListVideo(vid, num_frames, fps,
                            np.array(gts, np.float64).reshape(-1, 3),
                            np.array(props, np.float64).reshape(-1, 5))
  return video, i + 1 + num_props


def read_proposal_list(path):
  """[ProposalListVideo] of an SSN / P-GCN proposal list file."""
  try:
    with open(path) as f:
      lines = f.read().splitlines()
  except OSError as e:
    raise TalError(f'{path}: cannot read ({e.strerror})') from None
  except UnicodeDecodeError:
    raise TalError(f'{path}: not a UTF-8 text file') from None
  videos, i = [], 0
  while i < len(lines):
    if not lines[i].strip():
      i += 1
      continue
    if not lines[i].startswith('#'):
      raise TalError(f'{path}:{i + 1}: expected a "# index" line, got '
                     f'{_excerpt(lines[i])}')
    video, i = _parse_block(lines, i + 1, path)
    videos.append(video)
  return videos


def write_proposal_list(path, blocks):
  """Writes `format_proposal_list_video` blocks to `path` atomically."""
  errors.write_text(path, ''.join(blocks))


def proposals_to_results(video_names: Sequence[str], proposals, valid) -> dict:
  """ActivityNet results as MMAction2 dumps them (`ANetMetric.proposals2json`).

  Args:
    video_names: B names as in the annotations ('v_<id>').
    proposals: [B, K, 3] seconds (start_s, end_s, score), e.g. `to_seconds`.
    valid: [B, K] bool.

  Returns:
    {name[2:]: [{'score': s, 'segment': [start_s, end_s]}, ...]}; like
    MMAction2 the first two characters are dropped whatever they are, and
    values are not rounded.
  """
  proposals = np.asarray(proposals, np.float64)
  valid = np.asarray(valid, bool)
  results = {}
  for name, rows, keep in zip(video_names, proposals, valid):
    results[name[2:]] = [{'score': float(r[2]), 'segment': [float(r[0]),
                                                            float(r[1])]}
                         for r in rows[keep]]
  return results


def proposal_results(proposals: dict[str, np.ndarray]) -> dict:
  """ActivityNet results file as MMAction2 dumps it, from {name: [K, 3]
  seconds (start_s, end_s, score)}."""
  results = {}
  for name, rows in proposals.items():
    results.update(proposals_to_results(
        [name], rows[None], np.ones((1, len(rows)), bool)))
  return {'version': 'VERSION 1.3', 'results': results, 'external_data': {}}


def read_npz(path: str, shapes: dict[str, tuple], what: str
             ) -> dict[str, np.ndarray]:
  """The arrays `shapes` names from an .npz, checked; TalError naming the
  file and the field otherwise (a truncated file, a key missing, a shape
  other than `shapes` gives, a NaN or inf in a float array).

  `shapes`: {key: dims}, each dim an int or a letter that must take the same
  value wherever it appears, e.g. {'names': ('N',), 'x': ('N', 'T', 3)}.
  `what`: what produced the file, for the hint ('run ... again').
  """
  again = f'; write it again ({what})'
  try:
    with np.load(path, allow_pickle=False) as f:
      arrays = {k: f[k] for k in shapes if k in f.files}
  except FileNotFoundError:
    raise TalError(f'{path}: not found ({what} writes it)') from None
  except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as e:
    raise TalError(f'{path}: not a readable .npz '
                   f'({errors.one_line(str(e), 100)}){again}') from None
  sizes = {}
  for key, dims in shapes.items():
    if key not in arrays:
      raise TalError(f'{path}: no array {key!r}{again}')
    a = arrays[key]
    ok = a.ndim == len(dims)
    for dim, n in zip(dims, a.shape):
      if isinstance(dim, int):
        ok = ok and n == dim
      else:
        ok = ok and sizes.setdefault(dim, n) == n
    if not ok:
      want = 'x'.join(str(sizes.get(d, d)) for d in dims)
      raise TalError(f'{path}: {key} has shape {a.shape}, expected '
                     f'[{want}]{again}')
    if np.issubdtype(a.dtype, np.floating) and not np.all(np.isfinite(a)):
      at = tuple(int(i) for i in np.argwhere(~np.isfinite(a))[0])
      raise TalError(f'{path}: {key} has a {a[at]} value at index '
                     f'{list(at)}')
  return arrays

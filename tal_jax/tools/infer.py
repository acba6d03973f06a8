r"""Proposals for one video (or a folder of videos) from its feature file.

  python -m tal_jax.tools.infer --workdir work_dirs/bmn --features v_xxx.csv \
      --duration-second 120.5 --out v_xxx.json --plot v_xxx.png --top 5
  python -m tal_jax.tools.infer --workdir work_dirs/bmn --features csv_dir \
      --ann-file anet_anno_val.json --out results.json

  python -m tal_jax.tools.infer --workdir work_dirs/bmn --video my.mp4 \
      --rgb-checkpoint tsn_rgb.pth --flow-checkpoint tsn_flow.pth
  python -m tal_jax.tools.infer --workdir work_dirs/bsn --video my.mp4 \
      --rgb-checkpoint tsn_rgb.pth --flow-checkpoint tsn_flow.pth

--video (without --features): videos -> features first (tal_jax.features).
--features is a CSV (header + L rows of D values), a .npy [L, D], or a folder
of them (with --ann-file, the files of the videos it lists). Features of any
length L are resampled to the model's T bins as data preparation does (BSN's
poolData, tal_jax.data.resample). Each video's length
comes from --ann-file (duration_second, duration_frame, and its ground truth
is drawn on the plot), else from --duration-second, else L * 16 / --fps (one
feature row per 16 frames). Prints the top --top proposals in seconds, writes
all of them as ActivityNet results JSON (--out, atomically) and, with --plot,
a PNG of the score curves and the top proposals on a timeline.

--workdir may also be a tools.bsn_pipeline workdir (tem/ and pem/ inside):
TEM -> PGM -> PEM run in memory as each stage's --mode=test does
(tools.infer_bsn); --plot then draws TEM's action/start/end curves.

A THUMOS14 window config (configs/bmn_thumos14.py, or a bsn_pipeline
--dataset thumos14 workdir) instead cuts each video
into its test windows (every `sample_stride`-th row is a snippet, snippet i at
frame i * snippet stride; the video lasts --duration-second, else frames /
--fps), decodes each window and merges them as `--mode=test` does
(proposals only: no classifier, no plot).
"""

import argparse
import functools
import os
from typing import Callable, NamedTuple

import jax
import ml_collections
import numpy as np

from tal_jax import errors
from tal_jax import results_io
from tal_jax.engine import runlog
from tal_jax.data import activitynet
from tal_jax.data import resample
from tal_jax.data import thumos14
from tal_jax.data import thumos14_windows
from tal_jax.engine import window_test
from tal_jax.features import for_infer
from tal_jax.ops import segments
from tal_jax.ops import windows
from tal_jax.tools import export as export_tool
from tal_jax.tools import infer_bsn

# Frames per feature row (MMAction2's feature_extraction_interval).
SNIPPET_FRAMES = segments.FEATURE_EXTRACTION_INTERVAL


def list_feature_files(path: str) -> list[str]:
  """The feature files of --features: one file, or a folder's .csv/.npy."""
  if os.path.isdir(path):
    files = sorted(os.path.join(path, f) for f in os.listdir(path)
                   if f.endswith(('.csv', '.npy')))
    if not files:
      raise errors.TalError(f'{path}: no .csv or .npy feature files')
    return files
  if not os.path.isfile(path):
    raise errors.TalError(f'feature file not found: {path}')
  return [path]


def video_name(path: str) -> str:
  """'v_<id>' of a feature file (the results JSON drops the 'v_')."""
  stem = os.path.splitext(os.path.basename(path))[0]
  return stem if stem.startswith('v_') else 'v_' + stem


def _known(name: str, records: dict) -> bool:
  return name in records or name[2:] in records


def check_args(args) -> None:
  """TalError naming a numeric flag out of range or an unwritable output."""
  for flag, value, low in (('--duration-second', args.duration_second, 0),
                           ('--fps', args.fps, 0)):
    if value is not None and not (value > low and np.isfinite(value)):
      raise errors.TalError(f'{flag} must be > {low}, got {value}')
  for flag, value in (('--top', args.top), ('--batch-size', args.batch_size)):
    if value is not None and value < 1:
      raise errors.TalError(f'{flag} must be >= 1, got {value}')
  errors.check_writable(args.out, '--out')
  if args.plot:
    errors.check_writable(args.plot, '--plot')


def files_of_listed_videos(files: list[str], records: dict, features: str,
                           ann_file: str) -> list[str]:
  """The folder's feature files of the videos `ann_file` lists; TalError
  naming the listed videos that have none (never a silent drop)."""
  by_name = {}
  for f in files:
    by_name.setdefault(video_name(f), f)
  missing = [n for n in records
             if n not in by_name and 'v_' + n not in by_name]
  if missing:
    shown = ', '.join(missing[:5]) + (', ...' if len(missing) > 5 else '')
    raise errors.TalError(
        f'{features}: no feature file (.csv or .npy) for {len(missing)} of '
        f'the {len(records)} videos {ann_file} lists: {shown}')
  return [f for f in files if _known(video_name(f), records)]


def video_record(name: str, length: int, args, records: dict) -> dict:
  """duration_second, duration_frame and annotations of one video."""
  if records:
    rec = records.get(name) or records.get(name[2:])
    if not _known(name, records):
      raise errors.TalError(f'{args.ann_file}: no video {name}')
    return rec
  seconds = args.duration_second or length * SNIPPET_FRAMES / args.fps
  return {'duration_second': float(seconds),
          'duration_frame': length * SNIPPET_FRAMES, 'annotations': []}


def prepare_features(x: np.ndarray, path: str, rec: dict, temporal_dim: int,
                     feat_dim: int) -> np.ndarray:
  """[T, D] float32 of one file's features [L, D], resampled when L != T."""
  if x.shape[1] != feat_dim:
    raise errors.TalError(f'{path}: features have {x.shape[1]} columns, the '
                          f'model expects feat_dim {feat_dim}')
  if x.shape[0] != temporal_dim:
    x = resample.bsn_pool_features(x, temporal_dim, rec['duration_second'],
                                   rec['duration_frame'])
  return x.astype(np.float32)


def predict_outputs(predictor, params, serving, features: np.ndarray,
                    batch_size: int) -> dict[str, np.ndarray]:
  """Raw outputs by name for features [N, T, D] (batches padded to size)."""
  names = serving.output_names
  forward = jax.jit(functools.partial(predictor.model_def.forward,
                                      predictor.module,
                                      config=predictor.config))
  n = len(features)
  bs = max(1, min(batch_size, n))
  chunks = []
  for i in range(0, n, bs):
    x = np.zeros((bs,) + features.shape[1:], np.float32)
    x[:min(bs, n - i)] = features[i:i + bs]
    out = jax.device_get(forward(params, x))
    chunks.append([np.asarray(o)[:min(bs, n - i)] for o in out])
  return {k: np.concatenate([c[j] for c in chunks])
          for j, k in enumerate(names)}


class Model(NamedTuple):
  """What tools.infer runs: `decode` features [N, T, D] -> (normalised
  proposals [N, k, 3], valid [N, k], score curves {name: [N, T]}), then
  `to_seconds`; `config` gives T, D and the windows, `test` the windows'
  merge."""
  config: ml_collections.ConfigDict
  test: ml_collections.ConfigDict
  decode: Callable
  to_seconds: Callable
  where: str


def decode_outputs(predictor, params, serving, batch_size: int,
                   features: np.ndarray):
  """`Model.decode` of a served model (BMN): its outputs and decode."""
  outputs = predict_outputs(predictor, params, serving, features, batch_size)
  props, valid = serving.decode(outputs, predictor.config.test)
  return props, valid, {c: outputs[c] for c in serving.curves}


def load_model(args) -> Model:
  """The Model of --workdir: a tools.bsn_pipeline workdir (TEM -> PGM -> PEM,
  tools.infer_bsn) or a training workdir whose model gives proposals."""
  if infer_bsn.is_pipeline_workdir(args.workdir):
    chain = infer_bsn.load_chain(args)
    return Model(chain.tem.config, chain.pem.config.test,
                 functools.partial(infer_bsn.decode, chain,
                                   batch_size=args.batch_size),
                 chain.pem.predictor.model_def.to_seconds,
                 f'{chain.tem.where} and {chain.pem.where}')
  config, model_def, predictor, variables, where = export_tool.load_model(args)
  serving = export_tool.serving_of(config, model_def)
  if serving.decode is None:
    raise errors.TalError(f"model '{config.model_name}' gives no proposals on "
                          'its own; tools.infer serves bmn and '
                          'tools.bsn_pipeline workdirs (export the others '
                          'with tal_jax.tools.export)')
  return Model(config, config.test,
               functools.partial(decode_outputs, predictor,
                                 variables['params'], serving,
                                 args.batch_size or config.test.batch_size),
               model_def.to_seconds, where)


def print_top(name: str, rec: dict, rows: np.ndarray, top: int) -> None:
  print(f'{name} ({rec["duration_second"]:.2f} s): top {min(top, len(rows))} '
        f'of {len(rows)} proposals')
  for k, (s, e, score) in enumerate(rows[:top]):
    print(f'  {k + 1:3d}. {s:9.2f} - {e:9.2f} s   score {score:.4f}')


def _draw_curves(ax, curves: dict[str, np.ndarray], seconds_per_bin: float):
  for key, values in curves.items():
    t = (np.arange(len(values)) + 0.5) * seconds_per_bin
    ax.plot(t, values, label=f'{key} probability')
  ax.set_ylim(0, 1)
  ax.set_ylabel('score')
  ax.legend(loc='upper right', fontsize=8)
  ax.grid(alpha=0.3)


def _draw_proposals(ax, rows: np.ndarray, gt: list) -> None:
  """Top proposals as bars (opacity: score relative to the best), ground
  truth on top."""
  best = max(float(np.max(rows[:, 2], initial=0)), 1e-12)
  for row, (s, e, score) in enumerate(rows[::-1]):
    ax.broken_barh([(s, e - s)], (row, 0.8), facecolors='tab:blue',
                   alpha=float(np.clip(0.3 + 0.7 * score / best, 0.3, 1)))
    ax.text(e, row + 0.4, f' {score:.3f}', va='center', fontsize=7)
  labels = [f'#{k + 1}' for k in range(len(rows))][::-1]
  if gt:
    ax.broken_barh([(s, e - s) for s, e in gt], (len(rows), 0.8),
                   facecolors='tab:green')
    labels.append('gt')
  ax.set_yticks(np.arange(len(labels)) + 0.4)
  ax.set_yticklabels(labels)
  ax.set_xlabel('seconds')


def plot_video(out: str, name: str, rec: dict, curves: dict[str, np.ndarray],
               rows: np.ndarray, top: int, seconds_per_bin: float) -> None:
  """PNG: score curves [T] over time above the top proposals [P, 3] seconds
  and the video's ground truth (rec['annotations'])."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  rows = rows[:top]
  gt = [a['segment'] for a in rec.get('annotations', [])]
  height = max(len(rows) + (1 if gt else 0), 3)
  fig, (ax1, ax2) = plt.subplots(
      2, 1, sharex=True, figsize=(9, 2.6 + 0.28 * height),
      gridspec_kw={'height_ratios': [2, height * 0.35]})
  _draw_curves(ax1, curves, seconds_per_bin)
  _draw_proposals(ax2, rows, gt)
  ax2.set_xlim(0, rec['duration_second'])
  ax1.set_title(f'{name}: start/end scores and top {len(rows)} proposals')
  fig.tight_layout()
  with errors.atomic_path(out, '.png') as tmp:
    fig.savefig(tmp, format='png', dpi=110)
  plt.close(fig)


def _parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(
      description='Top proposals (seconds) of videos from their features.')
  export_tool.add_model_args(p)
  p.add_argument('--features', default=None,
                 help='feature .csv / .npy [L, D], or a folder of them')
  p.add_argument('--duration-second', type=float, default=None,
                 help='video length in seconds (without --ann-file)')
  p.add_argument('--fps', type=float, default=30.0,
                 help='frames per second assumed without a duration')
  p.add_argument('--ann-file', default=None,
                 help='annotation JSON giving each video\'s duration (and '
                 'ground truth for the plot)')
  p.add_argument('--out', default='proposals.json',
                 help='ActivityNet results JSON to write')
  p.add_argument('--plot', default=None, help='timeline PNG to write')
  p.add_argument('--video', default=None,
                 help='without --features: a video file, folder or .txt '
                 'list to extract features from (tal_jax.features); with '
                 '--features: the video to plot when it is a folder')
  for_infer.add_args(p)
  p.add_argument('--top', type=int, default=10,
                 help='proposals to print and plot per video')
  p.add_argument('--batch-size', type=int, default=None,
                 help='videos per forward (default config.test.batch_size)')
  p.add_argument('--quiet', action='store_true', help='no progress bar')
  return p


def _read_all(files, args, records, config):
  """(names, records, features [N, T, D]) of the feature files."""
  t, d = config.model.temporal_dim, config.model.feat_dim
  it = files
  if runlog.show_progress(args.quiet) and len(files) > 1:
    from tqdm import tqdm  # pylint: disable=g-import-not-at-top
    it = tqdm(files, desc='reading features')
  names, recs, feats = [], [], []
  for path in it:
    name = video_name(path)
    x = activitynet.read_feature_array(path, np.float64)
    rec = video_record(name, len(x), args, records)
    names.append(name)
    recs.append(rec)
    feats.append(prepare_features(x, path, rec, t, d))
  return names, recs, np.stack(feats)


def main(argv=None) -> dict[str, np.ndarray]:
  args = _parser().parse_args(argv)
  check_args(args)
  if args.features is None:
    for_infer.features_from_videos(args)
  files = list_feature_files(args.features)
  records = (activitynet.load_annotations(args.ann_file)
             if args.ann_file else {})
  if records and os.path.isdir(args.features):
    files = files_of_listed_videos(files, records, args.features,
                                   args.ann_file)
  if args.duration_second is not None and len(files) > 1:
    raise errors.TalError(
        f'--duration-second is one video\'s length, --features '
        f'{args.features} has {len(files)} files (give --ann-file with each '
        'video\'s duration_second)')
  model = load_model(args)
  if thumos14_windows.is_windowed(model.config):
    proposals = {video_name(f): infer_windows(f, args, model, records)
                 for f in files}
    runlog.info(f'restored {model.where}', args.quiet)
    errors.write_json(args.out, results_io.proposal_results(proposals))
    print(f'wrote {args.out}')
    return proposals
  names, recs, feats = _read_all(files, args, records, model.config)
  props, valid, curves = model.decode(feats)
  secs = model.to_seconds(props, [r['duration_frame'] for r in recs],
                          [r['duration_second'] for r in recs])
  proposals = {n: secs[i][valid[i]] for i, n in enumerate(names)}
  runlog.info(f'restored {model.where}', args.quiet)
  for n, rec in zip(names, recs):
    print_top(n, rec, proposals[n], args.top)
  errors.write_json(args.out, results_io.proposal_results(proposals))
  print(f'wrote {args.out}')
  if args.plot:
    _plot(args, names, recs, curves, proposals, model.config)
  return proposals


def infer_windows(path, args, model, records=None):
  """[P, 3] proposals in seconds of one video's features, cut into the test
  windows of a THUMOS14 window config and merged. The video lasts its
  duration_second in `records` (--ann-file), else --duration-second, else
  its frames at --fps."""
  config, t = model.config, model.test
  d = config.data
  x = activitynet.read_feature_array(path, np.float32)[::int(d.sample_stride)]
  if x.shape[1] != config.model.feat_dim:
    raise errors.TalError(f'{path}: features have {x.shape[1]} columns, the '
                          f'model expects feat_dim {config.model.feat_dim}')
  if not len(x):
    raise errors.TalError(f'{path}: no feature rows')
  setting = thumos14_windows.setting_of(config, 'test')
  thumos14_windows.check_test_config(t)
  stride, size = setting['snippet_stride'], setting['window_size']
  frames = len(x) * stride
  name = video_name(path)
  duration = (video_record(name, len(x), args, records
                           )['duration_second'] if records else
              args.duration_second or frames / args.fps)
  record = {'frame': frames, 'duration': duration, 'annotations': []}
  items = thumos14_windows.split_video(record, setting, thumos14.CLASSES,
                                       with_labels=False)
  feats = np.stack([windows.window_features(x, it['start'], it['end'],
                                            size)[0] for it in items])
  props, valid, _ = model.decode(feats)
  parts = []
  for j, item in enumerate(items):
    secs = window_test.window_seconds(
        props[j][valid[j]],
        thumos14_windows.window_info(name, record, item, setting), size)
    parts.append((secs[:, :2], secs[:, 2], np.zeros(len(secs), np.int64)))
  segs, scores, _ = window_test.merge_video(parts, t, t.proposal_max_seg_num)
  rows = np.concatenate([segs, scores[:, None]], axis=1)
  print_top(os.path.splitext(os.path.basename(path))[0],
            {'duration_second': duration}, rows, args.top)
  return rows


def _plot(args, names, recs, curves, proposals, config):
  which = args.video or (names[0] if len(names) == 1 else None)
  if which is None:
    raise errors.TalError('--plot with a folder of features needs --video')
  key = which if which.startswith('v_') else 'v_' + which
  if key not in names:
    raise errors.TalError(f'--video {which}: not among the features')
  i = names.index(key)
  factor = float(proposals_factor(recs[i]))
  plot_video(args.plot, key, recs[i], {c: v[i] for c, v in curves.items()},
             proposals[key], args.top,
             factor / config.model.temporal_dim)
  print(f'wrote {args.plot}')


def proposals_factor(rec: dict) -> float:
  """Seconds covered by the T bins (MMAction2's duration factor)."""
  frames = float(rec['duration_frame'])
  used = frames // SNIPPET_FRAMES * SNIPPET_FRAMES
  return used / frames * float(rec['duration_second'])


if __name__ == '__main__':
  errors.run_cli(main)

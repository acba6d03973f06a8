"""BSN's three stages as pieces of the shared loop, and the files between them.

  TEM (configs/bsn_tem.py): trained by tal_jax.main like BMN; each epoch it is
      evaluated by the AR@AN of its PGM candidates ranked by start x end score
      (MMAction2 evaluates nothing here). `--mode=test` runs TEM on the test
      split (all videos: anet_anno_full.json) and writes
      <workdir>/tem_results.npz (+ MMAction2's tem_results/*.csv on request).
  PGM (configs/bsn_pgm.py, tools/bsn_proposal_generation.py): candidates and
      BSP features from the TEM results -> <out>/pgm_{train,test}.npz
      (+ MMAction2's pgm_proposals/*.csv, pgm_features/*.npy on request).
  PEM (configs/bsn_pem.py): trained by tal_jax.main on pgm_train.npz,
      evaluated (AR@AN) and tested on pgm_test.npz.

Each stage also reads MMAction2's files, recognised by the folder's content
(`load_tem_dir`: tem_results/<video>.csv; `load_pgm_dir`: pgm_proposals/
<video>.csv + pgm_features/<video>.npy), so stages mix with MMAction2's.

File formats (ours; MMAction2's are written beside them when asked):
  tem_results.npz: names [N] str, tem_output [N, T, 3] float32.
  pgm_<mode>.npz: names [N] str, offsets [N + 1] int64, proposals [sum P, 7]
      float64 (rows of video i are offsets[i]:offsets[i+1], MMAction2's CSV
      columns and order), feature_offsets [N + 1], bsp_features [sum K, 32]
      float64 (K = min(P, top_k)).
"""

import math
import os
from typing import Any

import jax
import ml_collections
import numpy as np

from tal_jax.localizers.bsn import files as bsn_io
from tal_jax.localizers.bsn import losses as bsn_losses
from tal_jax.localizers.bsn import targets as bsn_targets
from tal_jax import errors
from tal_jax.engine import model_def
from tal_jax.engine import predict
from tal_jax.engine import window_test
from tal_jax.engine import runlog
from tal_jax.ops import losses
from tal_jax.ops import segments
from tal_jax.localizers.bsn import pgm
from tal_jax.localizers.bsn import convert as bsn_convert
from tal_jax.localizers.bsn import model as bsn_models
from tal_jax import results_io
from tal_jax.localizers.bsn import serving as bsn_serving

TEM_RESULTS = 'tem_results.npz'
# Videos per PGM call (bounds memory; one progress-bar tick each).
PGM_CHUNK = 256


# ----------------------------------------------------------------------- TEM


def tem_train_arrays(videos, config) -> dict[str, np.ndarray]:
  """Features and TEM labels (action, start, end) [N, T] of a split."""
  gt, gt_mask = segments.normalize_gt_batch(videos)
  action, start, end = bsn_targets.tem_targets_batch(
      gt, gt_mask, config.model.temporal_dim, config.model.boundary_ratio)
  return {'inputs': np.asarray(videos.features, np.float32),
          'action': action, 'start': start, 'end': end}


def tem_loss_fn(module, params, batch, rng, config):
  """TEM loss on groups of config.train.videos_per_loss videos (MMAction2's
  per-GPU batch)."""
  out = module.apply({'params': params}, batch['inputs'])

  def one_group(o, a, s, e, key):
    del key
    return bsn_losses.tem_loss(o, a, s, e, config.model.tem_match_threshold,
                               config.model.loss_weight)

  return losses.grouped_loss(
      one_group, (out, batch['action'], batch['start'], batch['end']), rng,
      config.train.videos_per_loss)


def tem_decode(outputs, batch, config):
  """TEM outputs [B, T, 3] -> the top PGM candidates by start x end score.

  Returns (proposals [B, k, 3] normalised (tmin, tmax, score), valid [B, k]),
  k = config.test.post_process_top_k.
  """
  del batch
  tem = np.asarray(outputs, np.float32)
  no_gt = [np.zeros((0, 2))] * len(tem)
  cands = pgm.generate_candidate_proposals(
      pgm.tem_result_table(tem), no_gt, config.test.peak_threshold)
  k = config.test.post_process_top_k
  props = np.zeros((len(tem), k, 3), np.float64)
  valid = np.zeros((len(tem), k), bool)
  for i, c in enumerate(cands):
    n = min(k, len(c))
    props[i, :n] = c[:n][:, [0, 1, 4]]
    valid[i, :n] = True
  return props, valid


def write_tem_results(path: str, names: list[str], tem_output: np.ndarray,
                      csv_dir: str = '') -> None:
  """Saves TEM outputs [N, T, 3]; with `csv_dir`, also MMAction2's CSVs."""
  with errors.atomic_path(path, '.npz') as tmp:
    with open(tmp, 'wb') as f:
      np.savez(f, names=np.asarray(names), tem_output=tem_output)
  if csv_dir:
    os.makedirs(csv_dir, exist_ok=True)
    for name, out in zip(names, tem_output):
      bsn_io.write_tem_result(bsn_io.video_path(csv_dir, name, '.csv'), out)


def tem_test(predictor, variables, videos, workdir: str,
             quiet: bool = False) -> dict[str, float]:
  """ModelDef.test of TEM: outputs for every video of the test split.

  Writes <workdir>/tem_results.npz (and tem_results/<video>.csv with
  config.test.write_csv); returns {'videos': N}.
  """
  config = predictor.config
  arrays = {'inputs': videos.features}
  outputs = np.zeros((len(videos), config.model.temporal_dim, 3), np.float32)
  for idx, out, _ in predict.forward_batches(
      predictor, variables['params'], arrays, config.test.batch_size,
      runlog.show_progress(quiet)):
    outputs[idx] = out
  if jax.process_index() == 0:
    csv_dir = (os.path.join(workdir, 'tem_results') if config.test.write_csv
               else '')
    write_tem_results(os.path.join(workdir, TEM_RESULTS), videos.names,
                      outputs, csv_dir)
  runlog.info(f'TEM results of {len(videos)} videos -> '
              f'{os.path.join(workdir, TEM_RESULTS)}', quiet)
  return {'videos': len(videos)}


def load_tem_results(path: str) -> dict[str, np.ndarray]:
  """{name: [T, 3] float32} from a tem_results.npz."""
  if not os.path.isfile(path):
    raise errors.TalError(f'TEM results not found: {path} (run tal_jax.main '
                          'with configs/bsn_tem.py --mode=test first)')
  f = results_io.read_npz(path, {'names': ('N',), 'tem_output': ('N', 'T', 3)},
                          'tal_jax.main --mode=test with configs/bsn_tem.py')
  return dict(zip(f['names'].tolist(), f['tem_output']))


def load_tem_dir(tem_dir: str, names) -> dict[str, np.ndarray]:
  """TEM results of a folder, whichever tool wrote them.

  Detected by the folder's content: <tem_dir>/tem_results.npz (tal_jax's TEM
  --mode=test) -> {name: [T, 3] float32} of every video it holds; else
  MMAction2's per-video CSVs (its TEM test's tem_results/<video>.csv: in
  <tem_dir> itself or in <tem_dir>/tem_results) -> {name: [T, 5] float32}
  (action, start, end, tmin, tmax, read as MMAction2 reads them) for each of
  `names`. TalError naming the folder when it holds neither, naming the video
  when a CSV of `names` is missing or its T differs from the others'.
  """
  npz = os.path.join(tem_dir, TEM_RESULTS)
  if os.path.isfile(npz):
    return load_tem_results(npz)
  csv_dir = _csv_folder(tem_dir)
  if not csv_dir:
    raise errors.TalError(
        f'{tem_dir}: no TEM results (neither {TEM_RESULTS} nor MMAction2 '
        'TEM CSVs <video>.csv; run TEM --mode=test first)')
  out = {}
  for name in names:
    path = bsn_io.video_path(csv_dir, name, '.csv')
    if not os.path.isfile(path):
      raise errors.TalError(f'video {name}: no TEM result {path}')
    out[name] = bsn_io.read_tem_result(path)
    first = next(iter(out))
    if out[name].shape != out[first].shape:
      raise errors.TalError(
          f'video {name}: {path} has {len(out[name])} rows, '
          f'{bsn_io.video_path(csv_dir, first, ".csv")} has '
          f'{len(out[first])} (TEM results of one run have one length)')
  return out


def _csv_folder(tem_dir: str) -> str:
  """<tem_dir> or <tem_dir>/tem_results, whichever holds *.csv files; ''."""
  for folder in (tem_dir, os.path.join(tem_dir, 'tem_results')):
    if os.path.isdir(folder) and any(
        f.endswith('.csv') for f in os.listdir(folder)):
      return folder
  return ''


# ----------------------------------------------------------------------- PGM


def run_pgm(tem_results: dict[str, np.ndarray], records: dict[str, Any],
            out_path: str, top_k: int, pgm_config: ml_collections.ConfigDict,
            mmaction2_dir: str = '', progress: bool = False,
            keep_unannotated: bool = False) -> int:
  """PGM for the videos of `records` that have annotations (as MMAction2;
  every video with keep_unannotated: THUMOS14 test windows).

  `tem_results`: {name: [T, 3] TEM outputs or [T, 5] TEM CSV rows}
  (`load_tem_dir`).

  Writes `out_path` (pgm_<mode>.npz); with `mmaction2_dir`, also
  <dir>/pgm_proposals/*.csv and <dir>/pgm_features/*.npy. Returns the number
  of videos processed. `progress` shows a bar over chunks of videos.
  """
  names = pgm_names(records, keep_unannotated)
  missing = [n for n in names if n not in tem_results]
  if missing:
    raise errors.TalError(f'video {missing[0]}: no TEM result ({len(missing)} '
                          'videos missing); run TEM --mode=test on a split '
                          'that covers them')
  proposals, features = pgm_in_memory(
      [tem_results[n] for n in names],
      [pgm.pgm_gt_segments(records[n], n) for n in names], top_k, pgm_config,
      progress)
  _save_pgm(out_path, names, proposals, features)
  if mmaction2_dir:
    for name, p, f in zip(names, proposals, features):
      bsn_io.write_pgm_proposals(
          bsn_io.video_path(os.path.join(mmaction2_dir, 'pgm_proposals'),
                            name, '.csv'), p)
      bsn_io.write_bsp_feature(
          bsn_io.video_path(os.path.join(mmaction2_dir, 'pgm_features'),
                            name, '.npy'), f)
  return len(names)


def check_pgm_config(pgm_config: ml_collections.ConfigDict) -> None:
  """TalError naming a field of a PGM config section (configs/bsn_pgm.py's
  config.pgm) out of range: top_k and sample counts integers >= 1,
  peak_threshold in [0, 1], bsp_boundary_ratio finite and > 0."""
  for key in ('train_top_k', 'test_top_k', 'num_sample_start',
              'num_sample_end', 'num_sample_action', 'num_sample_interp'):
    value = pgm_config[key]
    if not (value >= 1 and value == int(value)):
      raise errors.TalError(f'config.pgm.{key}={value!r} must be an integer '
                            '>= 1')
  if not 0 <= float(pgm_config.peak_threshold) <= 1:
    raise errors.TalError(f'config.pgm.peak_threshold='
                          f'{pgm_config.peak_threshold!r} must be in [0, 1]')
  ratio = float(pgm_config.bsp_boundary_ratio)
  if not (math.isfinite(ratio) and ratio > 0):
    raise errors.TalError(f'config.pgm.bsp_boundary_ratio='
                          f'{pgm_config.bsp_boundary_ratio!r} must be > 0')


def pgm_in_memory(tem_results, gt_segments, top_k: int,
                  pgm_config: ml_collections.ConfigDict,
                  progress: bool = False):
  """PGM of N videos in chunks of PGM_CHUNK: `pgm.proposal_generation` with
  the values of a PGM config section (configs/bsn_pgm.py's config.pgm).

  `tem_results`: N arrays [T, 3] TEM outputs or [T, 5] TEM CSV rows;
  `gt_segments`: N arrays [G, 2] (`pgm.pgm_gt_segments`; empty at inference:
  only match_iou / match_ioa depend on them). Returns (N proposals [P_i, 7],
  N BSP features [min(P_i, top_k), 32]), float64.
  """
  check_pgm_config(pgm_config)
  starts = range(0, len(tem_results), PGM_CHUNK)
  if progress:
    from tqdm import tqdm  # pylint: disable=g-import-not-at-top
    starts = tqdm(starts, desc=f'PGM ({len(tem_results)} videos, chunks of '
                  f'{PGM_CHUNK})')
  proposals, features = [], []
  for i in starts:
    p, f = pgm.proposal_generation(
        np.stack(tem_results[i:i + PGM_CHUNK]),
        gt_segments[i:i + PGM_CHUNK], top_k, pgm_config.peak_threshold,
        bsp_boundary_ratio=pgm_config.bsp_boundary_ratio,
        num_sample_start=pgm_config.num_sample_start,
        num_sample_end=pgm_config.num_sample_end,
        num_sample_action=pgm_config.num_sample_action,
        num_sample_interp=pgm_config.num_sample_interp)
    proposals += p
    features += f
  return proposals, features


def pgm_names(records: dict[str, Any],
              keep_unannotated: bool = False) -> list[str]:
  """The videos PGM processes: those with annotations (every one with
  keep_unannotated), sorted."""
  return sorted(n for n, r in records.items()
                if r['annotations'] or keep_unannotated)


def _offsets(arrays) -> np.ndarray:
  return np.concatenate([[0], np.cumsum([len(a) for a in arrays])]).astype(
      np.int64)


def _save_pgm(path, names, proposals, features) -> None:
  flat_p = (np.concatenate(proposals) if proposals else np.zeros((0, 7)))
  flat_f = (np.concatenate(features) if features else np.zeros((0, 32)))
  with errors.atomic_path(path, '.npz') as tmp:
    with open(tmp, 'wb') as f:
      np.savez(f, names=np.asarray(names, dtype=str),
               offsets=_offsets(proposals), proposals=flat_p,
               feature_offsets=_offsets(features), bsp_features=flat_f)


PGM_SHAPES = {'names': ('N',), 'offsets': ('M',), 'proposals': ('P', 7),
              'feature_offsets': ('M',), 'bsp_features': ('K', 'D')}


def load_pgm(path: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """{name: (proposals [P, 7] float64, bsp_features [K, 32] float64)}."""
  if not os.path.isfile(path):
    raise errors.TalError(f'PGM results not found: {path} (run '
                          'tal_jax.tools.bsn_proposal_generation first)')
  f = results_io.read_npz(path, PGM_SHAPES,
                          'tal_jax.tools.bsn_proposal_generation')
  off, foff = f['offsets'], f['feature_offsets']
  props, feats = f['proposals'], f['bsp_features']
  return {n: (props[off[i]:off[i + 1]], feats[foff[i]:foff[i + 1]])
          for i, n in enumerate(f['names'].tolist())}


def load_pgm_dir(pgm_dir: str, mode: str, names, top_k: int
                 ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """PGM results of a folder, whichever tool wrote them.

  Detected by the folder's content: <pgm_dir>/pgm_<mode>.npz (tal_jax) ->
  `load_pgm` (float64); else MMAction2's <pgm_dir>/pgm_proposals/<video>.csv
  + pgm_features/<video>.npy -> {name: (proposals [P, 7], features [K, 32])}
  float32 as MMAction2's `LoadProposals` reads them, for the videos of
  `names` that have a proposal file (a video without gets none, as from the
  npz). TalError naming the folder when it holds neither, naming the video
  when its features are missing or fewer than min(P, top_k).
  """
  npz = os.path.join(pgm_dir, f'pgm_{mode}.npz')
  if os.path.isfile(npz):
    return load_pgm(npz)
  prop_dir = os.path.join(pgm_dir, 'pgm_proposals')
  feat_dir = os.path.join(pgm_dir, 'pgm_features')
  if not (os.path.isdir(prop_dir) and
          any(f.endswith('.csv') for f in os.listdir(prop_dir))):
    raise errors.TalError(
        f'{pgm_dir}: no PGM results (neither pgm_{mode}.npz nor MMAction2\'s '
        'pgm_proposals/<video>.csv; run tal_jax.tools.bsn_proposal_generation '
        f'--mode={mode} first)')
  out = {}
  for name in names:
    path = bsn_io.video_path(prop_dir, name, '.csv')
    if not os.path.isfile(path):
      continue
    props = bsn_io.read_pgm_proposals(path)
    feats = bsn_io.read_bsp_feature(bsn_io.video_path(feat_dir, name, '.npy'))
    if len(feats) < min(len(props), top_k):
      raise errors.TalError(
          f'video {name}: {len(feats)} BSP features for {len(props)} '
          f'proposals, PEM needs {min(len(props), top_k)} (top_k {top_k})')
    out[name] = (props, feats)
  return out


# ----------------------------------------------------------------------- PEM


def _pgm_file(config, mode: str) -> str:
  if not config.data.pgm_dir:
    raise errors.TalError('config.data.pgm_dir is empty: point it at the '
                          'folder bsn_proposal_generation wrote')
  return os.path.join(os.path.expanduser(config.data.pgm_dir),
                      f'pgm_{mode}.npz')


def _pgm_rows(videos, config, mode: str, top_k: int):
  """(names, proposals [P_i, 7], BSP features [K_i, 32]) of the split's
  videos that have PGM results."""
  pgm_dir = os.path.dirname(_pgm_file(config, mode))
  table = load_pgm_dir(pgm_dir, mode, videos.names, top_k)
  names = [n for n in videos.names if n in table]
  if not names:
    raise errors.TalError(f'{pgm_dir} has PGM results for none of the '
                          f'{len(videos)} videos of the {mode} split')
  for n in names:
    width = table[n][1].shape[1]
    if width != config.model.feat_dim:
      raise errors.TalError(
          f'video {n}: BSP features in {pgm_dir} have {width} columns, '
          f'config.model.feat_dim is {config.model.feat_dim}')
  return (names, [table[n][0] for n in names], [table[n][1] for n in names])


def pem_train_arrays(videos, config) -> dict[str, np.ndarray]:
  """BSP features [N, 500, 32], their IoU targets and validity (train top_k)."""
  top_k = config.model.train_top_k
  _, props, feats = _pgm_rows(videos, config, 'train', top_k)
  feature, iou, valid = bsn_targets.pem_targets(props, feats, top_k)
  return {'inputs': feature, 'iou': iou, 'valid': valid}


def pem_test_arrays(proposals, bsp_features, top_k: int
                    ) -> dict[str, np.ndarray]:
  """PEM's test inputs of N videos' PGM results (proposals [P_i, 7],
  BSP features [K_i, 32]): inputs [N, top_k, 32] float32, proposals
  [N, top_k, 4] float32 (tmin, tmax, tmin_score, tmax_score; zero padding),
  valid [N, top_k] bool."""
  feature, _, valid = bsn_targets.pem_targets(proposals, bsp_features, top_k)
  rows = np.zeros((len(proposals), top_k, 4), np.float32)
  for i, p in enumerate(proposals):
    k = min(top_k, len(p))
    rows[i, :k] = p[:k, :4].astype(np.float32)
  return {'inputs': np.asarray(feature, np.float32), 'proposals': rows,
          'valid': np.asarray(valid, bool)}


def pem_eval_arrays(videos, config) -> dict[str, np.ndarray]:
  """`pem_test_arrays` for every video of the split, in its order.

  A video without PGM proposals gets none (zero recall), as MMAction2 would
  give it no results.
  """
  top_k = config.model.test_top_k
  names, props, feats = _pgm_rows(videos, config, 'test', top_k)
  found = pem_test_arrays(props, feats, top_k)
  index = {n: i for i, n in enumerate(names)}
  n = len(videos)
  out = {'inputs': np.zeros((n, top_k, config.model.feat_dim), np.float32),
         'proposals': np.zeros((n, top_k, 4), np.float32),
         'valid': np.zeros((n, top_k), bool)}
  for row, name in enumerate(videos.names):
    if name in index:
      for key, array in out.items():
        array[row] = found[key][index[name]]
  return out


def pem_loss_fn(module, params, batch, rng, config):
  """PEM loss over all proposals of each group of videos (MMAction2
  concatenates the proposals of its per-GPU batch)."""
  out = module.apply({'params': params}, batch['inputs'])
  m = config.model

  def one_group(o, iou, valid, key):
    return bsn_losses.pem_loss(
        o, iou, valid, key,
        pem_high_temporal_iou_threshold=m.pem_high_temporal_iou_threshold,
        pem_low_temporal_iou_threshold=m.pem_low_temporal_iou_threshold,
        pem_u_ratio_m=m.pem_u_ratio_m, pem_u_ratio_l=m.pem_u_ratio_l)

  return losses.grouped_loss(one_group, (out, batch['iou'], batch['valid']),
                            rng, config.train.videos_per_loss)


def pem_decode(outputs, batch, config):
  t = config.test
  return pgm.pem_post_processing(
      batch['proposals'], outputs, batch['valid'], t.soft_nms_alpha,
      t.soft_nms_low_threshold, t.soft_nms_high_threshold,
      t.post_process_top_k)


TEM_DEFINITION = model_def.ModelDef(
    build=bsn_models.tem_from_config, init_inputs=bsn_models.tem_inputs,
    train_arrays=tem_train_arrays, eval_arrays=model_def.feature_arrays,
    loss=tem_loss_fn, forward=model_def.apply_forward, decode=tem_decode,
    test=tem_test, import_state_dict=bsn_convert.import_state_dict,
    serving=bsn_serving.TEM_SERVING)

PEM_DEFINITION = model_def.ModelDef(
    build=bsn_models.pem_from_config, init_inputs=bsn_models.pem_init_inputs,
    train_arrays=pem_train_arrays, eval_arrays=pem_eval_arrays,
    loss=pem_loss_fn, forward=model_def.apply_forward, decode=pem_decode,
    uses_features=False, to_seconds=pgm.to_seconds, test=window_test.proposal_test,
    import_state_dict=bsn_convert.import_state_dict,
    serving=bsn_serving.PEM_SERVING)

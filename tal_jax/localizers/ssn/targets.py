"""SSN proposal assignment, sampling and targets (MMAction2 0.24.1 SSNDataset).

Host-side numpy, vectorised over proposals. Frames are 0-based here (frame
image `img_{i+1:05d}.jpg`, or row i of a per-frame feature array); MMAction2
adds its start_index 1 when it loads images.

Per video (`SSNVideo`, from a de-normalised proposal list read by
`tal_jax.results_io.read_proposal_list`):
* loading: num_frames = int(num_frames * fps); gts and proposals kept when
  int(end) > int(start) and int(start) < num_frames; end clipped to
  num_frames, coverage = unclipped length / num_frames; videos without gts
  dropped (upstream `filter_gt`).
* assignment (`assign_proposals`, train_cfg.ssn.assigner): positive
  best_iou > 0.7 (gts appended as positives); incomplete best_iou < 0.3 and
  overlap_self > 0.01; otherwise background when best_iou < 0.01 and
  coverage > 0.02.
* regression targets of positives against their highest-IoU gt:
  ((gt_center - center) / length, log(gt_length / length)), centers
  (start + end - 1) / 2; normalised by the mean / std (ddof 0) over all
  proposal positives of the split (gts excluded), `reg_normalize_constants`.
* sampling (`sample_video`): per video positive / incomplete / background
  1 / 6 / 1 drawn from the video's pools (with replacement only when a pool
  is smaller than requested; from the whole split's pool when the video's is
  empty), laid out [positives, incompletes, backgrounds]; labels 0 for
  backgrounds; each proposal brings 2 + 5 + 2 frame indices and (starting,
  ending) scale factors.
* test (`test_inputs`): a tick every test_interval frames, per proposal four
  tick indices and scale factors, relative (start, end).
"""

import dataclasses

import numpy as np

from tal_jax.errors import TalError

TRAIN_ASSIGNER = dict(positive_iou_threshold=0.7, background_iou_threshold=0.01,
                      incomplete_iou_threshold=0.3,
                      background_coverage_threshold=0.02,
                      incomplete_overlap_threshold=0.01)


def temporal_iou_matrix(start, end, gt_start, gt_end):
  """[P, G] IoU of proposals with gts (float64, as upstream temporal_iou)."""
  inter = np.maximum(np.minimum(end[:, None], gt_end[None]) -
                     np.maximum(start[:, None], gt_start[None]), 0)
  union = (end - start)[:, None] - inter + (gt_end - gt_start)[None]
  return np.divide(inter, union, dtype=np.float64)


def regression_targets(start, end, gts):
  """[P, 2] (location, log size) targets against each row's best-IoU gt.

  Args:
    start, end: [P] frames; gts: [G, 3] (label, start, end).
  """
  best = np.argmax(temporal_iou_matrix(start, end, gts[:, 1], gts[:, 2]),
                   axis=1)
  gs, ge = gts[best, 1], gts[best, 2]
  size = (end - start).astype(np.float64)
  loc = ((gs + ge - 1) / 2 - (start + end - 1) / 2) / size
  return np.stack([loc, np.log((ge - gs) / size)], axis=1).reshape(-1, 2)


@dataclasses.dataclass
class Pool:
  """Proposals of one type: rows (label, start, end) [N, 3] int64, the
  video's num_frames [N], regression targets [N, 2] float64 (zeros but for
  positives)."""
  rows: np.ndarray
  num_frames: np.ndarray
  reg: np.ndarray

  def take(self, idx):
    return Pool(self.rows[idx], self.num_frames[idx], self.reg[idx])

  @staticmethod
  def concat(pools):
    return Pool(np.concatenate([p.rows for p in pools]).reshape(-1, 3),
                np.concatenate([p.num_frames for p in pools]),
                np.concatenate([p.reg for p in pools]).reshape(-1, 2))


def _pool(rows, num_frames, reg=None):
  rows = rows.reshape(-1, 3)
  reg = np.zeros((len(rows), 2)) if reg is None else reg
  return Pool(rows, np.full(len(rows), num_frames, np.int64), reg)


def positive_pool(video, positive_iou_threshold=0.7, with_gt=True):
  """Positives (best_iou > threshold, then the gts) with their targets."""
  rows = video.proposals[video.best_iou > positive_iou_threshold]
  if with_gt:
    rows = np.concatenate([rows, video.gts])
  reg = regression_targets(rows[:, 1], rows[:, 2], video.gts)
  return _pool(rows, video.num_frames, reg)


def negative_pools(video, incomplete_iou_threshold=0.3,
                   background_iou_threshold=0.01,
                   background_coverage_threshold=0.02,
                   incomplete_overlap_threshold=0.01, **unused):
  """(incomplete, background) pools (`SSNDataset.get_negatives`)."""
  del unused
  inc = ((video.best_iou < incomplete_iou_threshold) &
         (video.overlap_self > incomplete_overlap_threshold))
  bg = (~inc & (video.best_iou < background_iou_threshold) &
        (video.coverage > background_coverage_threshold))
  return (_pool(video.proposals[inc], video.num_frames),
          _pool(video.proposals[bg], video.num_frames))


def assign_proposals(video, assigner=None, add_gt_as_proposals=True):
  """[positive, incomplete, background] Pools of one video."""
  a = dict(TRAIN_ASSIGNER, **(assigner or {}))
  pos = positive_pool(video, a['positive_iou_threshold'], add_gt_as_proposals)
  return [pos, *negative_pools(video, **a)]


def reg_normalize_constants(videos, positive_iou_threshold=0.7):
  """[2, 2] float64 ((mean loc, mean size), (std loc, std size)).

  Over the proposal positives of every video (gts not included), as
  `SSNDataset._compute_reg_normalize_constants`.
  """
  regs = [positive_pool(v, positive_iou_threshold, False).reg for v in videos]
  regs = np.concatenate(regs).reshape(-1, 2)
  if not len(regs):
    raise TalError('proposal list: no proposal with best_iou above '
                   f'{positive_iou_threshold}; cannot normalise regression')
  return np.array((regs.mean(axis=0), regs.std(axis=0)))


# ------------------------------------------------------------- sampling


def stage_scale_factors(start, end, num_frames, aug_ratio=(0.5, 0.5),
                        clip_len=1):
  """[N, 2] (starting, ending) scale factors (`SSNDataset._get_stage`).

  Args:
    start, end: [N] int frames (end clipped); num_frames: [N] or scalar.
  """
  duration = end - start
  valid_start = np.maximum(0, start - (duration * aug_ratio[0]).astype(int))
  valid_end = np.minimum(num_frames - clip_len + 1,
                         end - 1 + (duration * aug_ratio[1]).astype(int))
  start_len = start - valid_start - clip_len
  end_len = (valid_end - end + 1) - clip_len
  return np.stack([(start_len + clip_len + 1) / (duration * aug_ratio[0]),
                   (end_len + clip_len + 1) / (duration * aug_ratio[1])],
                  axis=1)


def _stage_offsets(valid_length, num_segments, rng):
  """[N, S] offsets in a stage (`SampleProposalFrames._get_*_indices`).

  rng None gives the 'val' mode (segment centres), else 'train' (a random
  frame in each of S equal intervals of (valid_length + 1) // S frames).
  """
  seg = np.arange(num_segments)[None, :]
  if rng is None:
    avg = valid_length[:, None] / float(num_segments)
    out = (seg * avg + avg / 2.0).astype(np.int64)
    return np.where(valid_length[:, None] >= num_segments, out, 0)
  avg = ((valid_length + 1) // num_segments)[:, None]
  jitter = np.floor(rng.random((len(valid_length), num_segments)) *
                    np.maximum(avg, 1)).astype(np.int64)
  return np.where(avg > 0, seg * avg + jitter, 0)


def proposal_frame_indices(start, end, num_frames, rng=None,
                           segments=(2, 5, 2), aug_ratio=(0.5, 0.5),
                           clip_len=1):
  """[N, S] 0-based frame indices of proposals' starting/course/ending segments.

  As `SampleProposalFrames._get_proposal_clips` (rng None = 'val' mode), then
  modulo num_frames. num_frames is the video whose frames are read.
  """
  duration = end - start
  valid_start = np.maximum(0, start - (duration * aug_ratio[0]).astype(int))
  valid_end = np.minimum(num_frames - clip_len + 1,
                         end - 1 + (duration * aug_ratio[1]).astype(int))
  offsets = np.concatenate([
      _stage_offsets(start - valid_start - clip_len, segments[0], rng)
      + valid_start[:, None],
      _stage_offsets(duration - clip_len, segments[1], rng) + start[:, None],
      _stage_offsets((valid_end - end + 1) - clip_len, segments[2], rng)
      + end[:, None]], axis=1)
  return np.mod(offsets, num_frames)


def _choose(pool, video_pool, count, rng, what, video_id):
  """Indices into video_pool (or the split `pool` when it is empty)."""
  if len(video_pool.rows):
    idx = rng.choice(len(video_pool.rows), count,
                     replace=len(video_pool.rows) < count)
    return video_pool.take(idx)
  if len(pool.rows) < count:
    raise TalError(f'video {video_id}: no {what} proposal, and the split has '
                   f'fewer than {count} to sample from')
  return pool.take(rng.choice(len(pool.rows), count, replace=False))


def sample_video(video, video_pools, split_pools, reg_norm, rng,
                 counts=(1, 6, 1), mode='train', segments=(2, 5, 2),
                 aug_ratio=(0.5, 0.5)):
  """One video's training sample (`SSNDataset.prepare_train_frames`).

  Args:
    video: SSNVideo; video_pools, split_pools: [positive, incomplete,
      background] Pools of this video and of the whole split.
    reg_norm: [2, 2] `reg_normalize_constants`.
    rng: np.random.Generator (sampling, and frame jitter in 'train' mode).
    counts: (positive, incomplete, background) per video.
    mode: 'train' (random segment frames) or 'val' (centres).

  Returns:
    {'frame_inds': [K, S] int32 0-based frames of this video,
     'proposal_scale_factor': [K, 2] float32, 'proposal_type': [K] int32
     (0 pos, 1 incomplete, 2 background), 'proposal_labels': [K] int32,
     'reg_targets': [K, 2] float32 (normalised for positives, else 0)}.
  """
  names = ('positive', 'incomplete', 'background')
  chosen = [_choose(split_pools[t], video_pools[t], counts[t], rng, names[t],
                    video.video_id) for t in range(3)]
  ptype = np.repeat(np.arange(3), counts)
  sel = Pool.concat(chosen)
  labels = np.where(ptype == 2, 0, sel.rows[:, 0])
  reg = np.where((ptype == 0)[:, None], (sel.reg - reg_norm[0]) / reg_norm[1],
                 sel.reg)
  start, end = sel.rows[:, 1], sel.rows[:, 2]
  frames = proposal_frame_indices(start, end, video.num_frames,
                                  rng if mode == 'train' else None, segments,
                                  aug_ratio)
  return {'frame_inds': frames.astype(np.int32),
          'proposal_scale_factor': stage_scale_factors(
              start, end, sel.num_frames, aug_ratio).astype(np.float32),
          'proposal_type': ptype.astype(np.int32),
          'proposal_labels': labels.astype(np.int32),
          'reg_targets': reg.astype(np.float32)}


@dataclasses.dataclass
class SplitPools:
  """Assignment of a whole split, computed once: per video [pos, inc, bg]
  Pools, the split-wide Pools, and the [2, 2] regression constants."""
  videos: list
  split: list
  reg_norm: np.ndarray


def assign_split(videos, assigner=None, reg_norm=None,
                 add_gt_as_proposals=True) -> SplitPools:
  """SplitPools of `videos`; reg_norm defaults to the split's own."""
  a = dict(TRAIN_ASSIGNER, **(assigner or {}))
  pools = [assign_proposals(v, a, add_gt_as_proposals) for v in videos]
  split = [Pool.concat([p[t] for p in pools]) for t in range(3)]
  if reg_norm is None:
    reg_norm = reg_normalize_constants(videos, a['positive_iou_threshold'])
  return SplitPools(pools, split, np.asarray(reg_norm, np.float64))


def sample_split(videos, rng, assigner=None, counts=(1, 6, 1), mode='train',
                 reg_norm=None, pools=None):
  """Stacked `sample_video` of every video: arrays [N_videos, K, ...].

  pools: an `assign_split` result to reuse across epochs (else computed
  with `assigner` and `reg_norm`).
  """
  pools = pools or assign_split(videos, assigner, reg_norm)
  samples = [sample_video(v, p, pools.split, pools.reg_norm, rng, counts, mode)
             for v, p in zip(videos, pools.videos)]
  return {k: np.stack([s[k] for s in samples]) for k in samples[0]}


# ----------------------------------------------------------------- test


def test_inputs(video, test_interval=6, aug_ratio=(0.5, 0.5), clip_len=1):
  """Test-time inputs of one video (`SSNDataset.prepare_test_frames`).

  Returns:
    {'frame_ticks': [T] int 0-based frames to read (one every test_interval),
     'relative_proposal_list': [P, 2] float32 (start, end) / num_frames,
     'scale_factor_list': [P, 2] float32, 'proposal_tick_list': [P, 4] int32
     (real start, start, end, real end) in ticks}. A video without proposals
    gets the single proposal [0, num_frames - 1].
  """
  n = video.num_frames
  ticks = np.arange(0, n - clip_len, test_interval, dtype=int)
  rows = video.proposals if len(video.proposals) else np.array([[0, 0, n - 1]])
  rel = np.stack([rows[:, 1] / n, rows[:, 2] / n], axis=1)
  length = rel[:, 1] - rel[:, 0]
  aug_start, aug_end = length * aug_ratio[0], length * aug_ratio[1]
  real_start = np.maximum(0.0, rel[:, 0] - aug_start)
  real_end = np.minimum(1.0, rel[:, 1] + aug_end)
  scale = np.stack([(rel[:, 0] - real_start) / aug_start,
                    (real_end - rel[:, 1]) / aug_end], axis=1)
  ranges = np.stack([real_start, rel[:, 0], rel[:, 1], real_end], axis=1)
  return {'frame_ticks': ticks,
          'relative_proposal_list': rel.astype(np.float32),
          'scale_factor_list': scale.astype(np.float32),
          'proposal_tick_list': (ranges * len(ticks)).astype(np.int32)}


def relative_ground_truth(videos):
  """{video_id: [{'segment': [s, e] / num_frames, 'label': class index}]}.

  As `SSNDataset.get_all_gts` (class index = label - 1, ends clipped).
  """
  return {v.video_id: [{'segment': [g[1] / v.num_frames, g[2] / v.num_frames],
                        'label': int(g[0]) - 1} for g in v.gts]
          for v in videos}

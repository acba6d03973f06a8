"""BMN inference post-processing: decode score maps, soft-NMS, seconds, results.

Gives the same proposals as MMAction2 1.2.0 (`BMN.predict`, `post_processing`
and `soft_nms` in `localizers/utils/proposal_utils.py`), batched over videos:

  candidates = decode_bmn(confidence_map, start, end)          # jit + vmap
  proposals, valid = post_processing(candidates.proposals, candidates.valid,
                                     0.4, 0.5, 0.9, 100)         # jit + vmap
  # or both at once for any number of videos, chunked by candidate count:
  proposals, valid = bmn_post_processing(confidence_map, start, end,
                                         0.4, 0.5, 0.9, 100)
  seconds = to_seconds(proposals, duration_frame, duration_second)  # host
  results = proposals_to_results(video_names, seconds, valid)        # host

Exactness choices (all mirror what MMAction2 computes):
- Scores are float32 products ((start * end) * cls) * reg, as in `BMN.predict`;
  proposal bounds s/T and (s+d+1)/T are float64 (Python floats there), so the
  soft-NMS runs in float64 under `jax.enable_x64` (it runs in float32 when given
  float32 proposals, as MMAction2's numpy code would). The IoU and threshold
  are evaluated with MMAction2's operation order, so grid-aligned ties such as
  iou == low + (high - low) * width fall on the same side.
- Ordering: MMAction2 sorts with `argsort()[::-1]` (numpy's default, unstable
  sort; with AVX-512 numpy it orders equal scores in no simple pattern) and
  picks with `np.argmax` (first maximum). `tie_break='numpy'` (default) calls
  numpy's own argsort on the host through `jax.pure_callback`, on the same
  compacted array MMAction2 sorts, so ties resolve exactly as MMAction2 does on
  the same numpy. `tie_break='stable'` stays on device: descending score,
  equal scores by descending index (numpy's order whenever its sort happens to
  be stable, e.g. all scores equal).
"""

import functools
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

# MMAction2's `feature_extraction_interval` (BMN default).
FEATURE_EXTRACTION_INTERVAL = 16
_TIE_BREAKS = ('numpy', 'stable')


def _check_tie_break(tie_break):
  if tie_break not in _TIE_BREAKS:
    raise ValueError(f'tie_break must be one of {_TIE_BREAKS}: {tie_break!r}')


class BmnCandidates(NamedTuple):
  """Decoded BMN candidates in MMAction2's order (duration-major, start-minor).

  proposals: [B, M, 3] float64 (tmin, tmax, score), tmin/tmax normalised to
    [0, 1]; M = T*(T-1)/2 cells with s+d+1 < T.
  valid: [B, M] bool, True where both boundaries are candidates.
  """
  proposals: jax.Array
  valid: jax.Array


def candidate_cells(temporal_dim: int) -> tuple[np.ndarray, np.ndarray]:
  """Cells [d, s] with s+d+1 < T in MMAction2's loop order.

  Returns (duration_index [M], start_index [M]) int32, M = T*(T-1)/2.
  """
  d, s = np.meshgrid(np.arange(temporal_dim), np.arange(temporal_dim),
                     indexing='ij')
  keep = (s + d + 1) < temporal_dim
  return d[keep].astype(np.int32), s[keep].astype(np.int32)


def _boundary_bins(scores: jax.Array, edge: int) -> jax.Array:
  """Candidate boundaries of one curve: the edge bin, local maxima, > 0.5*max.

  scores: [T] float32; edge: 0 for starts, -1 for ends. Returns [T] bool; the
  other edge bin is never a candidate (MMAction2 loops over bins 1..T-2).
  """
  mid = scores[1:-1]
  peak = (mid > scores[2:]) & (mid > scores[:-2])
  inner = peak | (mid > 0.5 * jnp.max(scores))
  false = jnp.zeros((1,), bool)
  true = jnp.ones((1,), bool)
  first, last = (true, false) if edge == 0 else (false, true)
  return jnp.concatenate([first, inner, last])


def _decode_one(confidence_map, start, end):
  """One video: [T, T, 2], [T], [T] -> ([M, 3] float64, [M] bool)."""
  t = start.shape[0]
  d, s = candidate_cells(t)
  e = s + d + 1
  start_bins = _boundary_bins(start, 0)
  end_bins = _boundary_bins(end, -1)
  cls = confidence_map[d, s, 1]
  reg = confidence_map[d, s, 0]
  score = ((start[s] * end[e]) * cls) * reg  # float32, MMAction2's order
  # Bounds are numpy constants: XLA would turn x / T into x * (1 / T).
  proposals = jnp.stack([s / t, e / t, score.astype(jnp.float64)], axis=-1)
  return proposals, start_bins[s] & end_bins[e]


_decode_batch = jax.jit(jax.vmap(_decode_one))


def decode_bmn(confidence_map, start, end) -> BmnCandidates:
  """Decodes BMN outputs into candidate proposals (MMAction2 `BMN.predict`).

  Args:
    confidence_map: [B, T(duration), T(start), 2] float32; channel 0 is the
      regression map, channel 1 the classification map.
    start: [B, T] float32 start probabilities.
    end: [B, T] float32 end probabilities.

  Returns:
    BmnCandidates with proposals [B, T*(T-1)/2, 3] float64 and valid mask.
  """
  with jax.enable_x64(True):
    proposals, valid = _decode_batch(
        jnp.asarray(confidence_map, jnp.float32),
        jnp.asarray(start, jnp.float32), jnp.asarray(end, jnp.float32))
  return BmnCandidates(proposals, valid)


def _numpy_order(scores: np.ndarray, valid: np.ndarray,
                 size: int) -> np.ndarray:
  """Host: MMAction2's `argsort()[::-1]` of the valid scores of each row.

  scores: [..., N]; valid: [..., N] bool. Returns [..., size] int32: the
  valid indices in the order MMAction2 gets from sorting the compacted
  array, then zeros.
  """
  scores = np.asarray(scores)
  flat = scores.reshape(-1, scores.shape[-1])
  flat_valid = np.broadcast_to(np.asarray(valid), scores.shape)
  flat_valid = flat_valid.reshape(flat.shape)
  order = np.zeros((flat.shape[0], size), np.int32)
  for row, (s, v) in enumerate(zip(flat, flat_valid)):
    live = np.flatnonzero(v)
    ranked = live[s[live].argsort()[::-1]][:size]
    order[row, :ranked.size] = ranked
  return order.reshape(scores.shape[:-1] + (size,))


def descending_order(scores, valid, tie_break: str = 'numpy',
                     size: int | None = None):
  """Order in which MMAction2 lists the valid scores (`argsort()[::-1]`).

  Args:
    scores: [N] float32/float64.
    valid: [N] bool.
    tie_break: 'numpy' (host numpy argsort, exact) or 'stable' (on device).
    size: static length of the result (default N).

  Returns:
    [size] int32 indices into `scores`: the valid ones in MMAction2's order;
    entries past the number of valid scores are arbitrary indices.
  """
  _check_tie_break(tie_break)
  n = scores.shape[0]
  size = n if size is None else size
  if tie_break == 'numpy':
    shape = jax.ShapeDtypeStruct((size,), jnp.int32)
    return jax.pure_callback(functools.partial(_numpy_order, size=size),
                             shape, scores, valid, vmap_method='broadcast_all')
  # Reverse of a stable ascending sort: equal scores by descending index.
  # (+ 0 maps -0.0 to 0.0, which numpy treats as equal.)
  key = jnp.where(valid, -scores + 0.0, jnp.inf)[::-1]
  return (n - 1 - jnp.argsort(key, stable=True)[:size]).astype(jnp.int32)


def temporal_iou(anchor_min, anchor_max, tmin, tmax):
  """IoU of one anchor with segments, in MMAction2's operation order.

  anchor_min, anchor_max: scalars; tmin, tmax: [N]. Returns [N] (NaN where
  both the anchor and a segment have zero length, as in numpy).
  """
  len_anchor = anchor_max - anchor_min
  inter = jnp.maximum(
      jnp.minimum(anchor_max, tmax) - jnp.maximum(anchor_min, tmin), 0.)
  union = len_anchor - inter + tmax - tmin
  return inter / union


def _rounded(product, zero):
  """Returns `product` rounded on its own, so XLA cannot fuse it into an FMA.

  XLA's CPU and GPU backends contract a*b + c into one fused multiply-add
  (one rounding), which moves thresholds such as 0.5 + 0.4 * 0.55 by an ulp
  and flips iou > threshold against numpy. An integer xor with a runtime zero
  is opaque to that contraction.
  """
  uint = {4: jnp.uint32, 8: jnp.uint64}[product.dtype.itemsize]
  bits = jax.lax.bitcast_convert_type(product, uint) ^ zero.astype(uint)
  return jax.lax.bitcast_convert_type(bits, product.dtype)


def _soft_nms_sorted(proposals, count, params, num_picks: int):
  """MMAction2's soft-NMS loop on one video's sorted proposals.

  Args:
    proposals: [N, 3] (tmin, tmax, score) in MMAction2's sorted order; the
      first `count` rows are candidates, the rest are ignored.
    count: scalar int, number of candidates.
    params: (alpha, low, high - low) scalars in the proposals' dtype and a
      runtime integer zero (see `_rounded`).
    num_picks: static, picks to make (MMAction2: top_k + 1).

  Returns:
    [num_picks, 3] picks in pick order (rows >= count are garbage).
  """
  tmin, tmax, score = proposals[:, 0], proposals[:, 1], proposals[:, 2]
  alpha, low, spread, zero = params
  index = jnp.arange(tmin.shape[0])
  # Picked and non-candidate rows hold -inf (scores are >= 0).
  score = jnp.where(index < count, score, -jnp.inf)

  def pick(i, carry):
    score, picks = carry
    # First maximum, as np.argmax (two plain reductions vectorise better).
    best = jnp.max(score)
    m = jnp.min(jnp.where(score == best, index, index.shape[0]))
    m = jnp.minimum(m, index.shape[0] - 1)
    a_min, a_max = tmin[m], tmax[m]
    picks = picks.at[i].set(jnp.stack([a_min, a_max, best]))
    score = jnp.where(index == m, -jnp.inf, score)
    iou = temporal_iou(a_min, a_max, tmin, tmax)
    hit = iou > low + _rounded(spread * (a_max - a_min), zero)
    score = jnp.where(hit, score * jnp.exp(-jnp.square(iou) / alpha), score)
    return score, picks

  picks = jnp.zeros((num_picks, 3), proposals.dtype)
  _, picks = jax.lax.fori_loop(0, num_picks, pick, (score, picks))
  return picks


def _soft_nms_head(head, count, params, top_k, tie_break, num_picks,
                   final_sort):
  """Soft-NMS on sorted rows, then MMAction2's re-sort and cut to top_k.

  head: [C, 3] the best C >= count candidates in MMAction2's order.
  Returns (rows [P, 3], rows_valid [P]).
  """
  picks = _soft_nms_sorted(head, count, params, num_picks)
  picked = jnp.arange(num_picks) < count
  if not final_sort:
    return picks, picked
  order = descending_order(picks[:, 2], picked, tie_break)
  num_out = min(top_k, num_picks)
  return picks[order][:num_out], picked[:num_out]


def _post_process_one(proposals, valid, params, top_k, tie_break, capacity,
                      final_sort):
  """One video: sort, soft-NMS (top_k + 1 picks), re-sort and cut to top_k.

  Only the first `capacity` rows of the sorted order (>= the number of
  candidates) enter the soft-NMS loop. Returns (rows [P, 3], rows_valid [P]).
  """
  order = descending_order(proposals[:, 2], valid, tie_break, capacity)
  num_picks = min(top_k + 1, proposals.shape[0])
  return _soft_nms_head(proposals[order], jnp.sum(valid), params, top_k,
                        tie_break, num_picks, final_sort)


def _bmn_one(confidence_map, start, end, params, top_k, tie_break, capacity):
  """decode + post-processing of one video without the [M, 3] intermediate."""
  t = start.shape[0]
  d, s = candidate_cells(t)
  e = s + d + 1
  valid = _boundary_bins(start, 0)[s] & _boundary_bins(end, -1)[e]
  score = ((start[s] * end[e]) * confidence_map[d, s, 1]) * confidence_map[d,
                                                                         s, 0]
  score = score.astype(jnp.float64)
  order = descending_order(score, valid, tie_break, capacity)
  # Bounds are numpy constants: XLA would turn x / T into x * (1 / T).
  head = jnp.stack([jnp.asarray(s / t)[order], jnp.asarray(e / t)[order],
                    score[order]], -1)
  num_picks = min(top_k + 1, d.size)
  return _soft_nms_head(head, jnp.sum(valid), params, top_k, tie_break,
                        num_picks, True)


_post_process_batch = jax.jit(
    jax.vmap(_post_process_one, in_axes=(0, 0, None, None, None, None, None)),
    static_argnums=(3, 4, 5, 6))
_bmn_batch = jax.jit(
    jax.vmap(_bmn_one, in_axes=(0, 0, 0, None, None, None, None)),
    static_argnums=(4, 5, 6))


# Loop lengths compiled for; a batch uses the first >= its most candidates.
_CAPACITIES = (128, 256, 384, 512, 640, 768, 896, 1024, 1280, 1536, 2048,
               3072, 4096)


def _capacity(candidates: int, num_picks: int, n: int) -> int:
  """Static soft-NMS loop length for a batch: a bucket >= its candidates."""
  need = max(candidates, num_picks, 1)
  return min([c for c in _CAPACITIES if c >= need] + [n])


def _nms_params(dtype, soft_nms_alpha, soft_nms_low_threshold,
                soft_nms_high_threshold):
  """(alpha, low, high - low, zero) as the loop wants them (under x64)."""
  # As numpy does with Python floats: high - low in float64, then cast.
  params = tuple(
      jnp.asarray(x, dtype) for x in
      (soft_nms_alpha, soft_nms_low_threshold,
       soft_nms_high_threshold - soft_nms_low_threshold))
  return params + (jnp.zeros((), jnp.uint32),)


def _run_soft_nms(proposals, valid, soft_nms_alpha, soft_nms_low_threshold,
                  soft_nms_high_threshold, post_process_top_k, tie_break,
                  final_sort):
  """Host wrapper: picks the loop length from the mask, calls the jit."""
  _check_tie_break(tie_break)
  valid = np.asarray(valid, bool)
  n = valid.shape[-1]
  top_k = int(post_process_top_k)
  capacity = _capacity(int(valid.sum(-1).max(initial=0)), top_k + 1, n)
  with jax.enable_x64(True):
    proposals = jnp.asarray(proposals)
    params = _nms_params(proposals.dtype, soft_nms_alpha,
                         soft_nms_low_threshold, soft_nms_high_threshold)
    return _post_process_batch(proposals, jnp.asarray(valid), params, top_k,
                               tie_break, capacity, final_sort)


def soft_nms(proposals, valid, soft_nms_alpha: float,
             soft_nms_low_threshold: float, soft_nms_high_threshold: float,
             post_process_top_k: int, tie_break: str = 'numpy'):
  """MMAction2's `soft_nms`, batched: top_k + 1 picks in pick order.

  Args:
    proposals: [B, N, 3] float64 (or float32) (tmin, tmax, score); the
      arithmetic runs in this dtype, as MMAction2's numpy code would.
    valid: [B, N] bool candidate mask; candidates keep their index order.
    soft_nms_alpha, soft_nms_low_threshold, soft_nms_high_threshold: decay
      exp(-iou^2/alpha) where iou > low + (high - low) * width_of_pick.
    post_process_top_k: top_k; min(top_k + 1, N) picks are made.
    tie_break: 'numpy' (exact MMAction2 order) or 'stable'; see module doc.

  Returns:
    (picks [B, P, 3], picked [B, P] bool), P = min(top_k + 1, N).
  """
  return _run_soft_nms(proposals, valid, soft_nms_alpha,
                       soft_nms_low_threshold, soft_nms_high_threshold,
                       post_process_top_k, tie_break, final_sort=False)


def post_processing(proposals, valid, soft_nms_alpha: float,
                    soft_nms_low_threshold: float,
                    soft_nms_high_threshold: float, post_process_top_k: int,
                    tie_break: str = 'numpy'):
  """MMAction2's `post_processing` before seconds: soft-NMS, re-sort, top_k.

  Arguments as `soft_nms`. Returns (proposals [B, K, 3] normalised (tmin,
  tmax, score) sorted as MMAction2 lists them, valid [B, K] bool), K =
  min(top_k, N); rows with valid False are padding.
  """
  return _run_soft_nms(proposals, valid, soft_nms_alpha,
                       soft_nms_low_threshold, soft_nms_high_threshold,
                       post_process_top_k, tie_break, final_sort=True)


@jax.jit
def _candidate_counts(start, end):
  """[B, T], [B, T] -> [B] int32 candidates decode_bmn will find."""
  start_bins = jax.vmap(_boundary_bins, (0, None))(start, 0)
  end_bins = jax.vmap(_boundary_bins, (0, None))(end, -1)
  # Ends after each start: e in (s, T-1].
  ends_after = jnp.cumsum(end_bins[:, ::-1], axis=1)[:, ::-1]
  ends_after = jnp.pad(ends_after[:, 1:], ((0, 0), (0, 1)))
  return jnp.sum(start_bins * ends_after, axis=1)


def bmn_post_processing(confidence_map, start, end, soft_nms_alpha: float,
                        soft_nms_low_threshold: float,
                        soft_nms_high_threshold: float,
                        post_process_top_k: int, tie_break: str = 'numpy',
                        chunk_size: int = 128):
  """decode_bmn + post_processing for any number of videos (host arrays).

  Videos are processed in chunks of `chunk_size` with similar candidate
  counts, so each chunk's soft-NMS loop is no longer than it needs to be.

  Args:
    confidence_map: [V, T, T, 2] float32 (ch0 regression, ch1 classification).
    start, end: [V, T] float32.
    soft_nms_alpha, soft_nms_low_threshold, soft_nms_high_threshold,
      post_process_top_k: config.test.* as in MMAction2.
    tie_break: see `descending_order`.
    chunk_size: videos per jitted call (one compile per loop length used).

  Returns:
    (proposals [V, K, 3] float64 numpy (tmin, tmax, score) normalised and
    ordered as MMAction2 lists them, valid [V, K] bool), K = min(top_k,
    T*(T-1)/2).
  """
  _check_tie_break(tie_break)
  start = np.asarray(start, np.float32)
  end = np.asarray(end, np.float32)
  num_videos, t = start.shape
  top_k = int(post_process_top_k)
  chunk_size = max(1, min(chunk_size, num_videos))
  counts = np.asarray(_candidate_counts(start, end))
  by_count = np.argsort(counts, kind='stable')
  num_out = min(top_k, t * (t - 1) // 2)
  out = np.zeros((num_videos, num_out, 3), np.float64)
  out_valid = np.zeros((num_videos, num_out), bool)
  with jax.enable_x64(True):
    params = _nms_params(jnp.float64, soft_nms_alpha, soft_nms_low_threshold,
                         soft_nms_high_threshold)
    for i in range(0, num_videos, chunk_size):
      rows = by_count[i:i + chunk_size]
      padded = np.concatenate([rows, np.repeat(rows[-1:],
                                               chunk_size - rows.size)])
      capacity = _capacity(int(counts[rows].max()), top_k + 1,
                           t * (t - 1) // 2)
      props, valid = _bmn_batch(
          np.asarray(confidence_map[padded], np.float32), start[padded],
          end[padded], params, top_k, tie_break, capacity)
      out[rows] = np.asarray(props)[:rows.size]
      out_valid[rows] = np.asarray(valid)[:rows.size]
  return out, out_valid


def to_seconds(proposals, duration_frame, duration_second,
               feature_extraction_interval: int = FEATURE_EXTRACTION_INTERVAL):
  """Normalised proposals -> seconds, with MMAction2's duration factor.

  Args:
    proposals: [B, K, 3] (tmin, tmax, score) normalised.
    duration_frame: [B] frames; duration_second: [B] seconds.
    feature_extraction_interval: frames per feature (16).

  Returns:
    [B, K, 3] float64 numpy (start_s, end_s, score): tmin and tmax are
    clipped to [0, 1] and scaled by (duration_frame // 16 * 16) /
    duration_frame * duration_second.
  """
  proposals = np.asarray(proposals, np.float64)
  frames = np.asarray(duration_frame, np.float64)
  used = np.floor_divide(frames, feature_extraction_interval)
  used = used * feature_extraction_interval
  factor = (used / frames * np.asarray(duration_second, np.float64))[:, None]
  return np.stack([np.maximum(0, proposals[..., 0]) * factor,
                   np.minimum(1, proposals[..., 1]) * factor,
                   proposals[..., 2]], axis=-1)


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

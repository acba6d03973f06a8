"""Soft-NMS as MMAction2 1.2.0 (`soft_nms`, `post_processing` in
`localizers/utils/proposal_utils.py`), batched over videos and jitted.

Shared by BMN (tal_jax.localizers.bmn.postprocess) and BSN's PEM
(tal_jax.localizers.bsn.pgm):

  proposals, valid = post_processing(proposals, valid, 0.4, 0.5, 0.9, 100)

Exactness choices (all mirror what MMAction2 computes):
- The arithmetic runs in the proposals' dtype: float64 under `jax.enable_x64`
  for BMN (its bounds are Python floats upstream), float32 for PEM (numpy
  float32 there). The IoU and threshold are evaluated with MMAction2's
  operation order, so grid-aligned ties such as
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

import jax
import jax.numpy as jnp
import numpy as np


_TIE_BREAKS = ('numpy', 'stable')


def check_tie_break(tie_break):
  if tie_break not in _TIE_BREAKS:
    raise ValueError(f'tie_break must be one of {_TIE_BREAKS}: {tie_break!r}')


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
  check_tie_break(tie_break)
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


def _nms_iou(anchor_min, anchor_max, tmin, tmax):
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
    iou = _nms_iou(a_min, a_max, tmin, tmax)
    hit = iou > low + _rounded(spread * (a_max - a_min), zero)
    score = jnp.where(hit, score * jnp.exp(-jnp.square(iou) / alpha), score)
    return score, picks

  picks = jnp.zeros((num_picks, 3), proposals.dtype)
  _, picks = jax.lax.fori_loop(0, num_picks, pick, (score, picks))
  return picks


def soft_nms_head(head, count, params, top_k, tie_break, num_picks,
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
  return soft_nms_head(proposals[order], jnp.sum(valid), params, top_k,
                        tie_break, num_picks, final_sort)


_post_process_batch = jax.jit(
    jax.vmap(_post_process_one, in_axes=(0, 0, None, None, None, None, None)),
    static_argnums=(3, 4, 5, 6))


# Loop lengths compiled for; a batch uses the first >= its most candidates.
_CAPACITIES = (128, 256, 384, 512, 640, 768, 896, 1024, 1280, 1536, 2048,
               3072, 4096)


def loop_capacity(candidates: int, num_picks: int, n: int) -> int:
  """Static soft-NMS loop length for a batch: a bucket >= its candidates."""
  need = max(candidates, num_picks, 1)
  return min([c for c in _CAPACITIES if c >= need] + [n])


def nms_params(dtype, soft_nms_alpha, soft_nms_low_threshold,
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
  check_tie_break(tie_break)
  valid = np.asarray(valid, bool)
  n = valid.shape[-1]
  top_k = int(post_process_top_k)
  capacity = loop_capacity(int(valid.sum(-1).max(initial=0)), top_k + 1, n)
  with jax.enable_x64(True):
    proposals = jnp.asarray(proposals)
    params = nms_params(proposals.dtype, soft_nms_alpha,
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

"""BMN inference post-processing: decode score maps, then soft-NMS.

Gives the same proposals as MMAction2 1.2.0 (`BMN.predict`, `post_processing`
and `soft_nms` in `localizers/utils/proposal_utils.py`), batched over videos:

  candidates = decode_bmn(confidence_map, start, end)          # jit + vmap
  proposals, valid = soft_nms.post_processing(
      candidates.proposals, candidates.valid, 0.4, 0.5, 0.9, 100)  # jit + vmap
  # or both at once for any number of videos, chunked by candidate count:
  proposals, valid = bmn_post_processing(confidence_map, start, end,
                                         0.4, 0.5, 0.9, 100)
  seconds = segments.to_seconds(proposals, duration_frame,
                                duration_second)                   # host

Exactness choices (all mirror what MMAction2 computes):
- Scores are float32 products ((start * end) * cls) * reg, as in `BMN.predict`;
  proposal bounds s/T and (s+d+1)/T are float64 (Python floats there), so the
  soft-NMS runs in float64 under `jax.enable_x64` (it runs in float32 when given
  float32 proposals, as MMAction2's numpy code would). The IoU and threshold
  are evaluated with MMAction2's operation order, so grid-aligned ties such as
  iou == low + (high - low) * width fall on the same side.
- Ordering and soft-NMS: `tal_jax.ops.soft_nms` (numpy's tie order).
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from tal_jax.ops import soft_nms


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


def _bmn_one(confidence_map, start, end, params, top_k, tie_break, capacity):
  """decode + post-processing of one video without the [M, 3] intermediate."""
  t = start.shape[0]
  d, s = candidate_cells(t)
  e = s + d + 1
  valid = _boundary_bins(start, 0)[s] & _boundary_bins(end, -1)[e]
  score = ((start[s] * end[e]) * confidence_map[d, s, 1]) * confidence_map[d,
                                                                         s, 0]
  score = score.astype(jnp.float64)
  order = soft_nms.descending_order(score, valid, tie_break, capacity)
  # Bounds are numpy constants: XLA would turn x / T into x * (1 / T).
  head = jnp.stack([jnp.asarray(s / t)[order], jnp.asarray(e / t)[order],
                    score[order]], -1)
  num_picks = min(top_k + 1, d.size)
  return soft_nms.soft_nms_head(head, jnp.sum(valid), params, top_k, tie_break,
                        num_picks, True)


_bmn_batch = jax.jit(
    jax.vmap(_bmn_one, in_axes=(0, 0, 0, None, None, None, None)),
    static_argnums=(4, 5, 6))


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
    tie_break: see `soft_nms.descending_order`.
    chunk_size: videos per jitted call (one compile per loop length used).

  Returns:
    (proposals [V, K, 3] float64 numpy (tmin, tmax, score) normalised and
    ordered as MMAction2 lists them, valid [V, K] bool), K = min(top_k,
    T*(T-1)/2).
  """
  soft_nms.check_tie_break(tie_break)
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
    params = soft_nms.nms_params(jnp.float64, soft_nms_alpha, soft_nms_low_threshold,
                         soft_nms_high_threshold)
    for i in range(0, num_videos, chunk_size):
      rows = by_count[i:i + chunk_size]
      padded = np.concatenate([rows, np.repeat(rows[-1:],
                                               chunk_size - rows.size)])
      capacity = soft_nms.loop_capacity(int(counts[rows].max()), top_k + 1,
                           t * (t - 1) // 2)
      props, valid = _bmn_batch(
          np.asarray(confidence_map[padded], np.float32), start[padded],
          end[padded], params, top_k, tie_break, capacity)
      out[rows] = np.asarray(props)[:rows.size]
      out_valid[rows] = np.asarray(valid)[:rows.size]
  return out, out_valid



"""SSN frame mode: rawframes through the ResNet backbone, trained with the head.

MMAction2 0.24.1 `ssn_r50_450e_thumos14_rgb_{train,test}.py` with
config.data.mode == 'frames':
* frames: `<config.data.frame_dir>/<video>/img_{:05d}.jpg` (filename_tmpl,
  start_index 1: frame row i is file i + 1), decoded, resized to fit
  config.data.resize_scale (keep ratio), centre-cropped to crop_size and kept
  uint8 RGB (tal_jax/data/rawframes.py); the BGR mean subtraction runs on the
  device (`rawframes.normalize`).
* backbone: tal_jax.nn.resnet.ResNet (ResNet-50 by default) with the
  config's BN mode (partial BN: only the stem's BN uses batch statistics and
  its scale/bias train; every other BN uses running statistics and is
  frozen); its spatially pooled output is the frame feature [D = 32 * width]
  the head reads. Batch statistics are computed per group of
  config.train.videos_per_loss videos (upstream: per GPU).
* training: each epoch's sampled proposal frames (8 proposals x 9 frames per
  video) are decoded on the host, in threads, into [N, 8, 9, c, c, 3] uint8.
* test: the frames of a video's ticks go through the backbone in chunks of
  config.test.frames_per_batch (upstream's sampler batch_size), in eval mode.
"""

import concurrent.futures
import functools
import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from tal_jax import errors
from tal_jax.nn import resnet_import as tv_convert
from tal_jax.data import rawframes
from tal_jax.nn import resnet


def is_frames(config: ml_collections.ConfigDict) -> bool:
  """Whether the config trains SSN on rawframes (else on frame features)."""
  mode = config.data.mode
  if mode not in ('features', 'frames'):
    raise errors.TalError(f"config.data.mode='{mode}' is not 'features' or "
                          "'frames'")
  return mode == 'frames'


def frames_per_video(config: ml_collections.ConfigDict) -> int:
  """Images one video brings to a training step: 8 proposals x 9 frames."""
  return config.model.num_per_video * sum(config.model.num_segments_list)


def build_backbone(config: ml_collections.ConfigDict) -> resnet.ResNet:
  """The configured ResNet; TalError when model.feat_dim is not its width."""
  b = config.model.backbone
  out_dim = b.width * 2**(len(b.stage_blocks) - 1) * resnet.EXPANSION
  if config.model.feat_dim != out_dim:
    raise errors.TalError(
        f'config.model.feat_dim={config.model.feat_dim}, but the backbone '
        f'(width {b.width}, {len(b.stage_blocks)} stages) gives {out_dim}')
  return resnet.ResNet(
      stage_blocks=tuple(b.stage_blocks), width=b.width,
      norm_eval=b.norm_eval, partial_bn=b.partial_bn,
      frozen_stages=b.frozen_stages, dtype=jnp.dtype(config.dtype),
      bn_group_size=config.train.videos_per_loss * frames_per_video(config))


def param_labels(params: Any, config: ml_collections.ConfigDict) -> Any:
  """'trainable' / 'frozen' per leaf (the backbone's BN mode), or None in
  feature mode (everything trains)."""
  if not is_frames(config):
    return None
  b = config.model.backbone
  labels = jax.tree.map(lambda _: 'trainable', dict(params))
  labels['backbone'] = resnet.param_labels(params['backbone'], b.partial_bn,
                                           b.frozen_stages)
  return labels


def load_pretrained(variables: dict, config: ml_collections.ConfigDict
                    ) -> dict:
  """Puts config.train.backbone_pretrained (a torchvision or MMAction2 .pth
  of the ResNet) in place of the backbone's random init."""
  path = config.train.backbone_pretrained if is_frames(config) else ''
  if not path:
    return variables
  b = config.model.backbone
  loaded = tv_convert.load_resnet_checkpoint(
      os.path.expanduser(path), stage_blocks=tuple(b.stage_blocks),
      width=b.width)
  out = {k: dict(v) for k, v in variables.items()}
  out['params']['backbone'] = loaded['params']
  out['batch_stats']['backbone'] = loaded['batch_stats']
  return out


def frame_dirs(config: ml_collections.ConfigDict, names, frame_dir: str
               ) -> list[str]:
  """Each video's frame folder; TalError naming the first one missing."""
  root = os.path.expanduser(frame_dir)
  if not root:
    raise errors.TalError("config.data.frame_dir is empty (the rawframes "
                          "folder: <frame_dir>/<video>/img_00001.jpg ...)")
  dirs = [os.path.join(root, name) for name in names]
  for name, d in zip(names, dirs):
    if not os.path.isdir(d):
      raise errors.TalError(f'video {name}: frame folder {d} not found')
  return dirs


def load_clip(video_dir: str, indices: np.ndarray,
              config: ml_collections.ConfigDict) -> np.ndarray:
  """[K] 0-based frame rows -> [K, c, c, 3] uint8 RGB, preprocessed."""
  d = config.data
  return rawframes.load_clip(video_dir, np.asarray(indices).ravel(),
                             tuple(d.resize_scale), d.crop_size,
                             d.filename_tmpl, d.start_index)


def proposal_frames(dirs: list[str], frame_inds: np.ndarray,
                    config: ml_collections.ConfigDict,
                    threads: int = 8) -> np.ndarray:
  """Sampled frames of every video: frame_inds [N, K, S] -> [N, K, S, c, c,
  3] uint8, decoded in `threads` threads (PIL releases the GIL)."""
  def one(i):
    clip = load_clip(dirs[i], frame_inds[i], config)
    return clip.reshape(frame_inds.shape[1:] + clip.shape[1:])
  with concurrent.futures.ThreadPoolExecutor(threads) as pool:
    return np.stack(list(pool.map(one, range(len(dirs)))))


@functools.partial(jax.jit, static_argnums=0)
def pooled_features(module, variables, images):
  """SSN `module`'s backbone in eval mode: [K, c, c, 3] frames -> [K, D]."""
  return module.apply(variables, images, method='frame_features')


def features_in_chunks(apply, video_dir: str, rows: np.ndarray,
                       batch_size: int, resize_scale, crop_size: int,
                       filename_tmpl: str, start_index: int) -> np.ndarray:
  """apply(frames [batch_size, c, c, 3] uint8) -> [batch_size, D] over a
  video's frame rows [K] in chunks (the last one padded, so one compiled
  shape serves every chunk) -> [K, D] float32. K must be > 0."""
  out = []
  for i in range(0, len(rows), batch_size):
    chunk = rows[i:i + batch_size]
    clip = rawframes.load_clip(video_dir, chunk, resize_scale, crop_size,
                               filename_tmpl, start_index)
    if len(chunk) < batch_size:
      clip = np.concatenate([clip, np.repeat(clip[-1:], batch_size -
                                             len(chunk), 0)])
    out.append(np.asarray(apply(clip), np.float32)[:len(chunk)])
  return np.concatenate(out)


def tick_features(module, variables: dict, video_dir: str,
                  ticks: np.ndarray, config: ml_collections.ConfigDict
                  ) -> np.ndarray:
  """Backbone features of a video's tick frames: [T] rows -> [T, D] float32,
  in chunks of config.test.frames_per_batch frames, BN in eval mode."""
  if not len(ticks):
    return np.zeros((0, config.model.feat_dim), np.float32)
  d = config.data
  return features_in_chunks(
      functools.partial(pooled_features, module, variables), video_dir,
      np.asarray(ticks), config.test.frames_per_batch,
      tuple(d.resize_scale), d.crop_size, d.filename_tmpl, d.start_index)

"""MMAction2 1.2.0's TSN-R50 recogniser (Recognizer2D + ResNet + TSNHead).

`configs/_base_/models/tsn_r50.py` as the ActivityNet feature configs use it:
ResNet-50 (style pytorch, eval-mode BN), TSNHead (spatial average, average
consensus over the segments, dropout off at test time, `fc_cls`), and the
ActionDataPreprocessor's normalisation:
  RGB   3 channels, mean (123.675, 116.28, 103.53), std (58.395, 57.12,
        57.375), RGB order;
  flow  `in_channels = 2 * clip_len = 10`: the 5 flow frames of a clip as
        channels x0, y0, x1, y1, ..., x4, y4 (FormatShape 'NCHW' with
        modality 'Flow'), mean 128, std 128 for every channel.
With clip_feature_extraction.py's `--long-video-mode` every clip is one
sample (one segment), so a clip's class scores are fc_cls of its pooled
feature (`--dump-score`, average_clips None: raw scores, no softmax), and
its feature (FeatureHead, spatial + temporal 'avg') is the pooled 2048-d
backbone output. `average_clip` gives the one-vector-per-video modes
('score': mean over clips, 'prob': mean of softmaxes).

Weights come from an MMAction2 recogniser .pth (`backbone.*` ConvModule
keys, `cls_head.fc_cls.*`), read without torch; depth, width, input
channels and classes are read from the state dict.
`Recognizer` runs the module jitted over fixed-size batches of clips,
split over the local devices ('data' axis, as tal_jax.parallel).
"""

import dataclasses
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from tal_jax import errors
from tal_jax.convert import pth
from tal_jax.engine import parallel
from tal_jax.nn import resnet
from tal_jax.nn import resnet_import
from tal_jax.nn.layers import torch_bias_init, torch_kernel_init

RESIZE_SCALE = (-1, 256)
CROP_SIZE = 256


@dataclasses.dataclass(frozen=True)
class Stream:
  """One modality of the ActivityNet feature route."""
  name: str
  clip_len: int
  in_channels: int
  mean: tuple[float, ...]
  std: tuple[float, ...]


RGB = Stream('rgb', 1, 3, (123.675, 116.28, 103.53), (58.395, 57.12, 57.375))
FLOW = Stream('flow', 5, 10, (128.,) * 10, (128.,) * 10)


class TSN(nn.Module):
  """ResNet backbone + TSNHead fc on uint8 clips.

  Attributes:
    stage_blocks, width: the ResNet (ResNet-50: (3, 4, 6, 3), 64).
    num_classes: fc_cls outputs (200 for the ActivityNet models).
    mean, std: per-channel normalisation (Stream.mean / Stream.std).
    dtype: compute dtype of the backbone.
  """
  stage_blocks: Sequence[int] = resnet.RESNET50_STAGE_BLOCKS
  width: int = 64
  num_classes: int = 200
  mean: Sequence[float] = RGB.mean
  std: Sequence[float] = RGB.std
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, clips: jax.Array) -> dict[str, jax.Array]:
    """clips: [B, H, W, C] uint8 -> {'scores': [B, K], 'feature': [B, D]}
    float32 (D = 32 * width)."""
    x = ((clips.astype(jnp.float32) - jnp.asarray(self.mean, jnp.float32))
         / jnp.asarray(self.std, jnp.float32))
    out = resnet.ResNet(stage_blocks=tuple(self.stage_blocks),
                        width=self.width, dtype=self.dtype,
                        name='backbone')(x, train=False)
    feature = out['pooled']
    scores = nn.Dense(self.num_classes, dtype=jnp.float32,
                      param_dtype=jnp.float32, kernel_init=torch_kernel_init,
                      bias_init=torch_bias_init(feature.shape[-1]),
                      name='fc_cls')(feature)
    return {'scores': scores, 'feature': feature}


def stack_flow_clip(flow_frames: np.ndarray) -> np.ndarray:
  """[..., L, H, W, 2] x/y flow images -> [..., H, W, 2 L] channels
  x0, y0, x1, y1, ... (MMAction2's flow input layout)."""
  x = np.moveaxis(flow_frames, -4, -2)  # [..., H, W, L, 2]
  return x.reshape(x.shape[:-2] + (-1,))


def average_clip(scores: np.ndarray, mode: str | None) -> np.ndarray:
  """BaseHead.average_clip over a video's clips: [N, K] -> [K] ('score',
  'prob') or [N, K] unchanged (None)."""
  if mode is None:
    return scores
  if mode == 'score':
    return scores.mean(0)
  if mode == 'prob':
    e = np.exp(scores - scores.max(-1, keepdims=True))
    return (e / e.sum(-1, keepdims=True)).mean(0)
  raise errors.TalError(f"average_clips {mode!r} is not None, 'score' or "
                        "'prob'")


def _architecture(sd: dict, source: str) -> dict:
  """stage_blocks, width, in_channels, num_classes of a TSN state dict."""
  from tal_jax.tools.extract_frame_features import resnet_shape  # pylint: disable=g-import-not-at-top
  if 'cls_head.fc_cls.weight' not in sd or not any(
      k.startswith('backbone.') for k in sd):
    raise errors.TalError(f'{source}: not an MMAction2 TSN recogniser '
                          '(needs backbone.* and cls_head.fc_cls.*)')
  try:
    stage_blocks, width = resnet_shape(sd)
  except errors.TalError as e:
    raise errors.TalError(f'{source}: {e}') from None
  conv1 = sd.get('backbone.conv1.conv.weight',
                 sd.get('backbone.conv1.weight'))
  return dict(stage_blocks=stage_blocks, width=width,
              in_channels=int(np.shape(conv1)[1]),
              num_classes=int(np.shape(sd['cls_head.fc_cls.weight'])[0]))


def from_state_dict(sd: dict, stream: Stream, source: str = 'state dict',
                    dtype: Any = jnp.float32) -> tuple[TSN, dict]:
  """(module, variables) of an MMAction2 TSN state dict for `stream`."""
  arch = _architecture(sd, source)
  if arch['in_channels'] != stream.in_channels:
    raise errors.TalError(
        f'{source}: its stem takes {arch["in_channels"]} channels, the '
        f'{stream.name} stream needs {stream.in_channels}')
  backbone = resnet_import.resnet_variables_from_state_dict(
      sd, stage_blocks=arch['stage_blocks'], width=arch['width'],
      source=source, in_channels=arch['in_channels'])
  fc = {'kernel': np.asarray(sd['cls_head.fc_cls.weight'], np.float32).T,
        'bias': np.asarray(sd['cls_head.fc_cls.bias'], np.float32)}
  module = TSN(stage_blocks=arch['stage_blocks'], width=arch['width'],
               num_classes=arch['num_classes'], mean=stream.mean,
               std=stream.std, dtype=dtype)
  variables = {'params': {'backbone': backbone['params'], 'fc_cls': fc},
               'batch_stats': {'backbone': backbone['batch_stats']}}
  return module, variables


def load(path: str, stream: Stream, dtype: Any = jnp.float32
         ) -> tuple[TSN, dict]:
  """(module, variables) of an MMAction2 TSN .pth (no torch needed)."""
  return from_state_dict(pth.load_pth(path), stream, path, dtype)


class Recognizer:
  """Runs a TSN over clips in jitted batches, split over the local devices.

  The batch is rounded up to a multiple of the device count; the last batch
  is padded (one compiled shape for long videos; see batch_for).
  """

  def __init__(self, module: TSN, variables: dict, batch_size: int = 16):
    devices = jax.local_devices()
    self.mesh = Mesh(np.asarray(devices), (parallel.DATA_AXIS,))
    n = len(devices)
    self.batch_size = -(-max(1, batch_size) // n) * n
    self._data = NamedSharding(self.mesh, P(parallel.DATA_AXIS))
    self._variables = jax.device_put(variables,
                                     NamedSharding(self.mesh, P()))
    self._apply = jax.jit(module.apply, out_shardings=self._data)

  def batch_for(self, num_clips: int) -> int:
    """The batch size for `num_clips` clips: batch_size, or for fewer clips
    the smallest power of two (times the device count) holding them, so a
    short video pads little and at most log2(batch_size) shapes compile."""
    n = self.mesh.devices.size
    per_device = -(-max(num_clips, 1) // n)
    return min(self.batch_size, 2**int(np.ceil(np.log2(per_device))) * n)

  def __call__(self, clips: np.ndarray) -> dict[str, np.ndarray]:
    """clips [N, H, W, C] uint8 -> {'scores': [N, K], 'feature': [N, D]}."""
    outs = []
    bs = self.batch_for(len(clips))
    for i in range(0, len(clips), bs):
      chunk = clips[i:i + bs]
      if len(chunk) < bs:
        pad = np.zeros((bs - len(chunk),) + chunk.shape[1:], chunk.dtype)
        chunk = np.concatenate([chunk, pad])
      out = self._apply(self._variables, jax.device_put(chunk, self._data))
      outs.append({k: np.asarray(v)[:min(bs, len(clips) - i)]
                   for k, v in jax.device_get(out).items()})
    if not outs:
      raise errors.TalError('no clips to recognise')
    return {k: np.concatenate([o[k] for o in outs]) for k in outs[0]}

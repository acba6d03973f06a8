r"""The embedded video example: a generated video + random-init recognisers.

  python -m tal_jax.features.example [--dir ~/.cache/tal_jax/video_example]

writes (once; kept for later runs) `example.mp4` (video.example_frames:
160 frames of 96x64 at 25 fps, moving shapes, PyAV's MPEG-4 encoder) and
`tsn_rgb_random.pth`, `tsn_flow_random.pth`: TSN recognisers with seeded
random weights in MMAction2's key layout (ResNet with one block per stage at
full widths, 200 classes, so the features are 400-d like ActivityNet's), so
that `tools.extract_features` and `tools.infer --video` can be tried without
any download. Random weights give meaningless features: for real ones use
MMAction2's ActivityNet TSN checkpoints (README, "Your own videos").
"""

import argparse
import os

from tal_jax import errors
from tal_jax.features import random_init
from tal_jax.features import tsn
from tal_jax.features import video

DEFAULT_DIR = '~/.cache/tal_jax/video_example'


def ensure(directory: str = DEFAULT_DIR) -> dict[str, str]:
  """Writes what is missing; returns {'video', 'rgb', 'flow'} paths."""
  directory = os.path.expanduser(directory)
  os.makedirs(directory, exist_ok=True)
  paths = {'video': os.path.join(directory, 'example.mp4'),
           'rgb': os.path.join(directory, 'tsn_rgb_random.pth'),
           'flow': os.path.join(directory, 'tsn_flow_random.pth')}
  video.write_example_video(paths['video'])
  for seed, stream in enumerate((tsn.RGB, tsn.FLOW)):
    path = paths[stream.name]
    if not os.path.exists(path):
      with errors.atomic_path(path, '.pth') as tmp:
        random_init.write_checkpoint(tmp, stream, seed=seed)
  return paths


def main(argv=None) -> dict[str, str]:
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--dir', default=DEFAULT_DIR)
  paths = ensure(p.parse_args(argv).dir)
  for key, path in paths.items():
    print(f'{key}: {path}')
  return paths


if __name__ == '__main__':
  errors.run_cli(main)

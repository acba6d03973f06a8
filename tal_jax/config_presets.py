"""Preset code shared by configs/*.py (configs cannot import each other: they
are loaded from their file, see config_utils.load_config)."""

import ml_collections

# The presets of the ActivityNet configs (bmn, bsn_tem, bsn_pgm, bsn_pem).
ACTIVITYNET_PRESETS = ('', 'full', 'tiny', 'slowonly_k700')
# The presets of the THUMOS14 window configs (bmn_thumos14, bsn_*_thumos14).
THUMOS14_PRESETS = ('', 'tsn', 'i3d', 'tiny')


def check_preset(config_file: str, arg: str, presets: tuple[str, ...]) -> None:
  """ValueError "configs/<config_file>: unknown preset '<arg>' (use ...)"
  unless `arg` is one of `presets`."""
  if arg not in presets:
    names = ', '.join(repr(p) for p in presets[:-1])
    raise ValueError(f"configs/{config_file}: unknown preset '{arg}' "
                     f"(use {names} or {presets[-1]!r})")


def slowonly_k700_data(data: ml_collections.ConfigDict,
                       ann_file_test: str) -> None:
  """MMAction2 1.2.0's SlowOnly-K700 ActivityNet layout, relative to the
  working directory as there (its `*k700-feature.py` configs: data_root =
  data_root_val = 'data/ActivityNet/k700slowonly', ann_file_train /
  ann_file_val = anet_anno_{train,val}.json); `ann_file_test` (a file name in
  data/ActivityNet/) differs between them."""
  data.feature_dir = 'data/ActivityNet/k700slowonly'
  data.ann_file_train = 'data/ActivityNet/anet_anno_train.json'
  data.ann_file_val = 'data/ActivityNet/anet_anno_val.json'
  data.ann_file_test = 'data/ActivityNet/' + ann_file_test


def tiny_train(train: ml_collections.ConfigDict, videos_per_loss: int) -> None:
  """The 'tiny' presets' schedule: 4 videos a step, 2 epochs, x0.1 after 1."""
  train.batch_size = 4
  train.videos_per_loss = videos_per_loss
  train.num_epochs = 2
  train.lr_milestones = (1,)

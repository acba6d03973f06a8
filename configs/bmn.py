r"""BMN on ActivityNet-1.3 features (MMAction2 1.2.0 `bmn_2xb8-400x100-9e_activitynet-feature.py`).

Usage:
  python -m tal_jax.main --config=configs/bmn.py --workdir=/tmp/bmn
  python -m tal_jax.main --config=configs/bmn.py:tiny --workdir=/tmp/bmn_tiny
  python -m tal_jax.main --config=configs/bmn.py --workdir=/tmp/bmn \
      --config.data.feature_dir=data/activitynet_feature_cuhk/csv_mean_100 \
      --config.data.ann_file_train=data/ActivityNet/anet_anno_train.json \
      --config.data.ann_file_val=data/ActivityNet/anet_anno_val.json \
      --config.data.ann_file_test=data/ActivityNet/anet_anno_val.json

The config argument picks a preset: '' (the embedded default dataset at its
default size), 'full' (the embedded dataset at ActivityNet's size: 9,649 train /
4,728 val videos), 'tiny' (a few videos and a narrow model, for tests),
'slowonly_k700' (MMAction2 1.2.0's `bmn_2xb8-2048x100-9e_activitynet-slowonly-k700-feature.py`: 2048-d SlowOnly-K700 features in
MMAction2's data layout, paths relative to the working directory as there; set
--config.data.* to read them from elsewhere).
"""

import ml_collections

from tal_jax import config_presets
from tal_jax import config_utils
from tal_jax.data import pipeline


def get_config(arg: str = '') -> ml_collections.ConfigDict:
  """Returns the BMN config; `arg` is '', 'full', 'tiny' or 'slowonly_k700'."""
  config_presets.check_preset('bmn.py', arg,
                              config_presets.ACTIVITYNET_PRESETS)
  config = config_utils.base_config('bmn')
  # Data fields shared by every model: see tal_jax/data/pipeline.py.
  config.data = data = pipeline.data_config()

  config.model = model = ml_collections.ConfigDict()
  # Number of temporal bins T the features are rescaled to.
  model.temporal_dim = 100
  # Feature channels D (400 for the cuhk features).
  model.feat_dim = 400
  # Sampling window extension on each side, as a fraction of the proposal.
  model.boundary_ratio = 0.5
  # Sampling points per proposal N, and sub-points per point.
  model.num_samples = 32
  model.num_samples_per_bin = 3
  # Widths of the 1d base, the 2d proposal module, and the Conv3d output.
  model.hidden_dim_1d = 256
  model.hidden_dim_2d = 128
  model.hidden_dim_3d = 512
  # Boundary-matching layer: 'reassociated' (Conv3d weights contracted with the
  # features first; the same function, ~6x fewer FLOPs, equal to 'dense' to fp32
  # tolerance in tests/test_bmn_model.py) or 'dense' (MMAction2's formulation).
  model.bm_layer = 'reassociated'

  config.test = test = ml_collections.ConfigDict()
  # Soft-NMS parameters and proposals kept per video.
  test.soft_nms_alpha = 0.4
  test.soft_nms_low_threshold = 0.5
  test.soft_nms_high_threshold = 0.9
  test.post_process_top_k = 100
  # Videos per inference batch (MMAction2 handles one video at a time).
  test.batch_size = 32

  # Adam 1e-3, weight decay 1e-4, 9 epochs, x0.1 at epoch 7, 2 GPUs x 8 videos.
  config.train = train = config_utils.train_config(
      batch_size=16, num_epochs=9, learning_rate=1e-3, weight_decay=1e-4,
      lr_milestones=(7,), videos_per_loss=8)

  pipeline.apply_data_preset(data, arg)
  if arg == 'tiny':
    model.temporal_dim = 16
    model.feat_dim = 400
    model.num_samples = 4
    model.num_samples_per_bin = 2
    model.hidden_dim_1d = 16
    model.hidden_dim_2d = 8
    model.hidden_dim_3d = 16
    config_presets.tiny_train(train, videos_per_loss=2)
  elif arg == 'slowonly_k700':
    # bmn_2xb8-2048x100-9e_activitynet-slowonly-k700-feature.py:
    # model = dict(feat_dim=2048).
    model.feat_dim = 2048
    # The same file: ann_file_test.
    config_presets.slowonly_k700_data(data, 'anet_anno_val.json')
  return config

r"""BSN stage 3, PEM (MMAction2 1.2.0 `bsn_pem_1xb16-400x100-20e_activitynet-feature.py`).

Usage (after PGM in both modes):
  python -m tal_jax.main --config=configs/bsn_pem.py --workdir=work_dirs/bsn/pem \
      --config.data.pgm_dir=work_dirs/bsn/pgm
  python -m tal_jax.main --config=configs/bsn_pem.py --workdir=work_dirs/bsn/pem \
      --config.data.pgm_dir=work_dirs/bsn/pgm --mode=test
Presets: '' (embedded dataset), 'full' (ActivityNet-sized), 'tiny' (tests),
'slowonly_k700' (MMAction2 1.2.0's
`bsn_pem_1xb16-2048x100-20e_activitynet-slowonly-k700-feature.py`: the same PEM settings, MMAction2's
data paths).
"""

import ml_collections

from tal_jax import config_presets
from tal_jax import config_utils
from tal_jax.data import pipeline


def get_config(arg: str = '') -> ml_collections.ConfigDict:
  """Returns the PEM config; `arg` is '', 'full', 'tiny' or 'slowonly_k700'."""
  config_presets.check_preset('bsn_pem.py', arg,
                              config_presets.ACTIVITYNET_PRESETS)
  config = config_utils.base_config('bsn_pem')
  # Data fields shared by every model; set data.pgm_dir.
  config.data = data = pipeline.data_config()

  config.model = model = ml_collections.ConfigDict()
  # BSP feature length and hidden width (pem_feat_dim, pem_hidden_dim).
  model.feat_dim = 32
  model.hidden_dim = 256
  # Loss: IoU above `high` is positive; medium (low, high] and low (<= low)
  # proposals are sampled at u_ratio_m / u_ratio_l times the positives.
  model.pem_high_temporal_iou_threshold = 0.6
  model.pem_low_temporal_iou_threshold = 0.2
  model.pem_u_ratio_m = 1.0
  model.pem_u_ratio_l = 2.0
  # Proposals per video read from PGM: training and test (LoadProposals top_k).
  model.train_top_k = 500
  model.test_top_k = 1000

  config.test = test = ml_collections.ConfigDict()
  # Soft-NMS parameters and proposals kept per video.
  test.soft_nms_alpha = 0.75
  test.soft_nms_low_threshold = 0.65
  test.soft_nms_high_threshold = 0.9
  test.post_process_top_k = 100
  # Videos per inference batch.
  test.batch_size = 32

  # Adam 1e-2, weight decay 1e-5, 20 epochs, x0.1 at 10, 1 GPU x 16 videos.
  config.train = train = config_utils.train_config(
      batch_size=16, num_epochs=20, learning_rate=1e-2, weight_decay=1e-5,
      lr_milestones=(10,), videos_per_loss=16)

  pipeline.apply_data_preset(data, arg)
  if arg == 'tiny':
    config_presets.tiny_train(train, videos_per_loss=4)
  elif arg == 'slowonly_k700':
    # bsn_pem_1xb16-2048x100-20e_activitynet-slowonly-k700-feature.py:
    # ann_file_test (PEM reads PGM's BSP features: model.feat_dim stays 32).
    config_presets.slowonly_k700_data(data, 'anet_anno_val.json')
  return config

r"""BSN stage 1, TEM (MMAction2 1.2.0 `bsn_tem_1xb16-400x100-20e_activitynet-feature.py`).

Usage:
  python -m tal_jax.main --config=configs/bsn_tem.py --workdir=work_dirs/bsn/tem
  # TEM outputs for every video (the test split: train + val), for PGM:
  python -m tal_jax.main --config=configs/bsn_tem.py --workdir=work_dirs/bsn/tem --mode=test
Real data: the same --config.data.* fields as configs/bmn.py, with
--config.data.ann_file_test=.../anet_anno_full.json (as MMAction2).
Presets: '' (embedded dataset), 'full' (ActivityNet-sized), 'tiny' (tests),
'slowonly_k700' (MMAction2 1.2.0's `bsn_tem_1xb16-2048x100-20e_activitynet-k700-feature.py`: 2048-d
SlowOnly-K700 features in MMAction2's data layout; its test file is
anet_anno_trainval.json, which MMAction2's process_annotations.py does not
write: make it, or set --config.data.ann_file_test).
"""

import ml_collections

from tal_jax import config_presets
from tal_jax import config_utils
from tal_jax.data import pipeline


def get_config(arg: str = '') -> ml_collections.ConfigDict:
  """Returns the TEM config; `arg` is '', 'full', 'tiny' or
  'slowonly_k700'."""
  config_presets.check_preset('bsn_tem.py', arg,
                              config_presets.ACTIVITYNET_PRESETS)
  config = config_utils.base_config('bsn_tem')
  # Data fields shared by every model; TEM's test split is every video.
  config.data = data = pipeline.data_config(synthetic_test_split='full')

  config.model = model = ml_collections.ConfigDict()
  # T temporal bins and D feature channels (MMAction2 temporal_dim, tem_feat_dim).
  model.temporal_dim = 100
  model.feat_dim = 400
  # tem_hidden_dim.
  model.hidden_dim = 512
  # Boundary regions are max(1/T, boundary_ratio * gt length) wide.
  model.boundary_ratio = 0.1
  # Labels above this count as positives in the logistic loss.
  model.tem_match_threshold = 0.5
  # Weight of the action term of the loss.
  model.loss_weight = 2.0

  config.test = test = ml_collections.ConfigDict()
  # Videos per inference batch.
  test.batch_size = 32
  # Per-epoch evaluation: AR@AN of PGM candidates (peaks above this fraction
  # of the maximum) ranked by start x end score, top k per video.
  test.peak_threshold = 0.5
  test.post_process_top_k = 100
  # --mode=test also writes MMAction2's tem_results/<video>.csv files.
  test.write_csv = False

  # Adam 1e-3, weight decay 1e-4, 20 epochs, x0.1 at 7 and 14, 1 GPU x 16.
  config.train = train = config_utils.train_config(
      batch_size=16, num_epochs=20, learning_rate=1e-3, weight_decay=1e-4,
      lr_milestones=(7, 14), videos_per_loss=16)

  pipeline.apply_data_preset(data, arg)
  if arg == 'tiny':
    model.temporal_dim = 16
    model.hidden_dim = 16
    config_presets.tiny_train(train, videos_per_loss=4)
  elif arg == 'slowonly_k700':
    # bsn_tem_1xb16-2048x100-20e_activitynet-k700-feature.py:
    # model = dict(tem_feat_dim=2048).
    model.feat_dim = 2048
    # The same file: ann_file_test (trainval there, anet_anno_full.json in
    # the 400x100 file).
    config_presets.slowonly_k700_data(data, 'anet_anno_trainval.json')
  return config

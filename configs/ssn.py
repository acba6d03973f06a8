r"""SSN on THUMOS14 (MMAction2 0.24.1 `ssn_r50_450e_thumos14_rgb_{train,test}.py`).

Feature mode: the head trains on per-frame features (<video>.npy [frames, D]).
  python -m tal_jax.main --config=configs/ssn.py --workdir=work_dirs/ssn
  python -m tal_jax.main --config=configs/ssn.py --workdir=work_dirs/ssn --mode=test
Real data: --config.data.ann_file_train=thumos14_tag_val_proposal_list.txt
  --config.data.ann_file_test=thumos14_tag_test_proposal_list.txt
  --config.data.feature_dir=FEATURES --config.model.feat_dim=2048
Presets: '' (embedded THUMOS-like set: 48 validation + 20 test videos, D=64),
'full' (real THUMOS14 sizes: 193 + 198 videos, D=2048 left to the user),
'tiny' (tests).
"""

import ml_collections

from tal_jax import config_utils
from tal_jax.data import pipeline


def get_config(arg: str = '') -> ml_collections.ConfigDict:
  """Returns the SSN config; `arg` is '', 'full' or 'tiny'."""
  config = config_utils.base_config('ssn')
  config.data = data = pipeline.data_config()
  # SSN proposal lists (de-normalised) in ann_file_*; features per frame.
  data.dataset = 'thumos14'
  # 'features' (<feature_dir>/<video>.npy); 'frames' is not implemented yet.
  data.mode = 'features'
  # Frames per second of the rawframes / feature rows (THUMOS14: 30).
  data.frame_rate = 30.0
  # Embedded set: THUMOS14 validation videos to train on, test videos.
  data.synthetic_train = 48
  data.synthetic_val = 20

  config.model = model = ml_collections.ConfigDict()
  model.num_classes = 20
  # Per-frame feature width (ResNet-50: 2048; the embedded set: 64).
  model.feat_dim = 64
  # Lists, not tuples: they are compared with the checkpoint's JSON metadata.
  model.stpp_stage = [1, 1, 1]
  model.num_segments_list = [2, 5, 2]
  model.use_regression = True
  model.init_std = 0.001
  # Dropout on the frame features before the head (the localizer's).
  model.dropout_ratio = 0.8
  # train_cfg.ssn: assigner IoU thresholds and the sampler.
  model.assigner = ml_collections.ConfigDict(dict(
      positive_iou_threshold=0.7, background_iou_threshold=0.01,
      incomplete_iou_threshold=0.3, background_coverage_threshold=0.02,
      incomplete_overlap_threshold=0.01))
  model.num_per_video = 8
  model.positive_ratio = 1
  model.background_ratio = 1
  model.incomplete_ratio = 6
  model.comp_loss_weight = 0.1
  model.reg_loss_weight = 0.1

  config.test = test = ml_collections.ConfigDict()
  # test_cfg.ssn: a tick every test_interval frames; top_k (proposal, class)
  # pairs per video; per-class NMS threshold.
  test.test_interval = 6
  test.top_k = 2000
  test.nms = 0.2
  # Class-agnostic proposals per video for the per-epoch AR@AN.
  test.post_process_top_k = 100
  test.batch_size = 4

  # SGD momentum 0.9, lr 1e-3, wd 1e-6, clip 35, x0.1 at 200 and 400 of 450
  # epochs; 8 GPUs x 2 videos = 16 videos per step (the loss of a batch is
  # the mean of its per-video losses, so the grouping does not matter). The
  # embedded default keeps all 450 epochs (48 videos: 3 steps per epoch).
  config.train = train = config_utils.train_config(
      batch_size=16, num_epochs=450, learning_rate=1e-3, weight_decay=1e-6,
      lr_milestones=(200, 400), videos_per_loss=2)
  train.optimizer = 'sgd'
  train.momentum = 0.9
  train.grad_clip_norm = 35.0
  # AR@AN of class-agnostic detections on the test videos every 50 epochs.
  train.eval_every_epochs = 50
  # 450 short epochs: a checkpoint every 10 (and at each evaluation).
  train.checkpoint_every_epochs = 10

  pipeline.apply_data_preset(data, arg)
  if arg == 'full':
    data.synthetic_train, data.synthetic_val = 193, 198
  elif arg == 'tiny':
    data.synthetic_train, data.synthetic_val = 8, 4
    train.batch_size = 4
    train.num_epochs = 2
    train.lr_milestones = (1,)
    train.eval_every_epochs = 1
  elif arg:
    raise ValueError(f"configs/ssn.py: unknown preset '{arg}' "
                     "(use '', 'full' or 'tiny')")
  return config

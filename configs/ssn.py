r"""SSN on THUMOS14 (MMAction2 0.24.1 `ssn_r50_450e_thumos14_rgb_{train,test}.py`).

Feature mode: the head trains on per-frame features (<video>.npy [frames, D]).
  python -m tal_jax.main --config=configs/ssn.py --workdir=work_dirs/ssn
  python -m tal_jax.main --config=configs/ssn.py --workdir=work_dirs/ssn --mode=test
Real data: --config.data.ann_file_train=thumos14_tag_val_proposal_list.txt
  --config.data.ann_file_test=thumos14_tag_test_proposal_list.txt
  --config.data.feature_dir=FEATURES --config.model.feat_dim=2048
Frame mode: ResNet-50 on rawframes, trained with the head (MMAction2's setup):
  python -m tal_jax.main --config=configs/ssn.py:frames --workdir=work_dirs/ssn_frames
Real data: --config.data.frame_dir=data/thumos14/rawframes (<video>/img_00001.jpg)
  --config.data.ann_file_train=... --config.data.ann_file_test=...
  --config.train.backbone_pretrained=resnet50-0676ba61.pth (torchvision's
  ImageNet weights, or an MMAction2 checkpoint's backbone)
Presets: '' (embedded THUMOS-like set: 48 validation + 20 test videos, D=64),
'full' (real THUMOS14 sizes: 193 + 198 videos, D=2048 left to the user),
'frames' (frame mode on 8 + 8 embedded videos of generated 36x48 frames at
5 fps, 32x32 crops, ResNet-50 from random init: every BN trains, as partial BN
assumes ImageNet statistics), 'tiny' and 'frames_tiny' (tests).
"""

import ml_collections

from tal_jax import config_presets
from tal_jax import config_utils
from tal_jax.data import pipeline


def get_config(arg: str = '') -> ml_collections.ConfigDict:
  """Returns the SSN config; `arg` is '', 'full' or 'tiny'."""
  config_presets.check_preset(
      'ssn.py', arg, ('', 'full', 'frames', 'tiny', 'frames_tiny'))
  config = config_utils.base_config('ssn')
  config.data = data = pipeline.data_config()
  # SSN proposal lists (de-normalised) in ann_file_*; features per frame.
  data.dataset = 'thumos14'
  # 'features' (<feature_dir>/<video>.npy per-frame features) or 'frames'
  # (<frame_dir>/<video>/<filename_tmpl> rawframes through the backbone).
  data.mode = 'features'
  data.frame_dir = ''
  data.filename_tmpl = 'img_{:05d}.jpg'
  # File number of frame row 0 (SSNDataset's start_index).
  data.start_index = 1
  # Resize to fit (w, h) keeping the ratio, then centre crop (train and test).
  data.resize_scale = (340, 256)
  data.crop_size = 224
  # Frames per second of the rawframes / feature rows (THUMOS14: 30).
  data.frame_rate = 30.0
  # (H, W) of the embedded set's generated frames (frame mode).
  data.synthetic_frame_size = (48, 64)
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
  # Frame mode backbone: ResNet-50 (MMAction2 0.24.1 ResNet(depth=50),
  # norm_eval=False, partial_bn=True); feat_dim must be 32 * width.
  model.backbone = ml_collections.ConfigDict(dict(
      stage_blocks=[3, 4, 6, 3], width=64, norm_eval=False, partial_bn=True,
      frozen_stages=-1))
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
  # Frame mode: tick frames per backbone call (test_cfg sampler batch_size).
  test.frames_per_batch = 16

  # SGD momentum 0.9, lr 1e-3, wd 1e-6, clip 35, x0.1 at 200 and 400 of 450
  # epochs; 8 GPUs x 1 video (videos_per_gpu=1) = 8 videos per step, the
  # loss (OHEM included) and the backbone's BN statistics per video. The
  # embedded default keeps all 450 epochs (48 videos: 6 steps per epoch).
  config.train = train = config_utils.train_config(
      batch_size=8, num_epochs=450, learning_rate=1e-3, weight_decay=1e-6,
      lr_milestones=(200, 400), videos_per_loss=1)
  train.optimizer = 'sgd'
  train.momentum = 0.9
  train.grad_clip_norm = 35.0
  # AR@AN of class-agnostic detections on the test videos every 50 epochs.
  train.eval_every_epochs = 50
  # 450 short epochs: a checkpoint every 10 (and at each evaluation).
  train.checkpoint_every_epochs = 10
  # Frame mode: a torchvision / MMAction2 ResNet .pth the backbone starts
  # from ('' = random init); upstream: torchvision://resnet50.
  train.backbone_pretrained = ''

  pipeline.apply_data_preset(data, arg)
  if arg == 'full':
    data.synthetic_train, data.synthetic_val = 193, 198
  elif arg == 'tiny':
    data.synthetic_train, data.synthetic_val = 8, 4
    train.batch_size = 4
    train.num_epochs = 2
    train.lr_milestones = (1,)
    train.eval_every_epochs = 1
  elif arg in ('frames', 'frames_tiny'):
    _frames_preset(config, arg == 'frames_tiny')
  return config


def _frames_preset(config, tiny):
  """Frame mode on the embedded set, sized for a CPU."""
  data, model, train = config.data, config.model, config.train
  data.mode = 'frames'
  data.frame_rate = 5.0
  data.synthetic_frame_size = (36, 48)
  data.resize_scale = (48, 36)
  data.crop_size = 32
  data.synthetic_train, data.synthetic_val = 8, 8
  model.feat_dim = 2048
  # Random init: every BN trains (partial BN freezes ImageNet statistics).
  model.backbone.partial_bn = False
  train.batch_size = 4
  train.num_epochs = 6
  train.lr_milestones = (4,)
  train.eval_every_epochs = 3
  train.checkpoint_every_epochs = 3
  config.test.frames_per_batch = 64
  if tiny:
    data.synthetic_frame_size = (24, 32)
    data.resize_scale = (32, 24)
    data.crop_size = 24
    data.frame_rate = 2.0
    data.synthetic_train, data.synthetic_val = 4, 2
    model.backbone.stage_blocks = [1, 1, 1, 1]
    model.backbone.width = 8
    model.feat_dim = 256
    train.batch_size = 2
    train.num_epochs = 2
    train.lr_milestones = (1,)
    train.eval_every_epochs = 1
    train.checkpoint_every_epochs = 1

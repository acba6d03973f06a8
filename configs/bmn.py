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
4,728 val videos), 'tiny' (a few videos and a narrow model, for tests).
"""

import ml_collections


def get_config(arg: str = '') -> ml_collections.ConfigDict:
  """Returns the BMN config; `arg` is '', 'full' or 'tiny'."""
  config = ml_collections.ConfigDict()
  config.model_name = 'bmn'
  # Root of all randomness: init, dropout-free sampling in the loss, shuffling.
  config.seed = 0
  # Compute dtype of the model ('float32' or 'bfloat16'); parameters and the loss
  # stay float32.
  config.dtype = 'float32'
  # Checkpoint to restore for --mode=test; empty means the best one in workdir.
  config.checkpoint = ''

  config.data = data = ml_collections.ConfigDict()
  # Folder of MMAction2 feature CSVs (v_<id>.csv, header + T rows x D columns)
  # or .npy files [T, D]. Empty: use the embedded synthetic dataset.
  data.feature_dir = ''
  # MMAction2 annotation files (anet_anno_{train,val,test}.json).
  data.ann_file_train = ''
  data.ann_file_val = ''
  data.ann_file_test = ''
  # Where packed arrays (and the embedded dataset) are cached.
  data.cache_dir = '~/.cache/tal_jax'
  # Embedded dataset: number of train / val videos and its seed. The default
  # is sized for a few minutes on a 2-core CPU; ':full' is ActivityNet-sized.
  data.synthetic_train = 64
  data.synthetic_val = 32
  data.synthetic_seed = 0
  # Skip (and count) videos whose features are missing or malformed instead
  # of stopping with an error.
  data.skip_bad_videos = False

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

  config.train = train = ml_collections.ConfigDict()
  # Global batch over all devices (MMAction2: 2 GPUs x 8 videos).
  train.batch_size = 16
  # MMAction2 computes the loss on each GPU's 8 videos and averages the
  # gradients (DDP); tal_jax computes it on groups of this many videos, so the
  # numbers are the same whatever the device count.
  train.videos_per_loss = 8
  train.num_epochs = 9
  # Adam with L2 weight decay added to the gradient (torch.optim.Adam).
  train.learning_rate = 1e-3
  train.weight_decay = 1e-4
  # Multiply the learning rate by `lr_gamma` at these epochs.
  train.lr_milestones = (7,)
  train.lr_gamma = 0.1
  # Global gradient-norm clip.
  train.grad_clip_norm = 40.0
  # Scale the learning rate by batch_size / base_batch_size (linear scaling rule).
  train.scale_lr = False
  train.base_batch_size = 16
  # Evaluate AR@AN on the validation split every this many epochs.
  train.eval_every_epochs = 1
  train.log_every_steps = 20

  if arg == 'full':
    data.synthetic_train = 9649
    data.synthetic_val = 4728
  elif arg == 'tiny':
    data.synthetic_train = 16
    data.synthetic_val = 8
    model.temporal_dim = 16
    model.feat_dim = 400
    model.num_samples = 4
    model.num_samples_per_bin = 2
    model.hidden_dim_1d = 16
    model.hidden_dim_2d = 8
    model.hidden_dim_3d = 16
    train.batch_size = 4
    train.videos_per_loss = 2
    train.num_epochs = 2
    train.lr_milestones = (1,)
  elif arg:
    raise ValueError(f"configs/bmn.py: unknown preset '{arg}' (use '', 'full' or 'tiny')")
  return config

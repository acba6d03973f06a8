"""AR@AN / AUC of an untrained (freshly initialised) model on a config's val split.

The reference point for "trains to an AUC well above an untrained model":
  python experiments/untrained_auc.py --config=configs/bmn.py [--seeds 3]
Accepts the same --config.* overrides as tal_jax.main (e.g. data sizes).
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tal_jax  # noqa: F401
import jax
from ml_collections import config_flags  # noqa: F401

from tal_jax import config_utils
from tal_jax.engine import trainer as train
from tal_jax.data import pipeline
from tal_jax.engine import predict as infer
from tal_jax import localizers


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument('--config', required=True)
  parser.add_argument('--seeds', type=int, default=3)
  args, overrides = parser.parse_known_args()
  config = config_utils.load_config(args.config)
  for o in overrides:
    key, _, value = o[len('--config.'):].partition('=')
    node = config
    *path, leaf = key.split('.')
    for p in path:
      node = node[p]
    node[leaf] = type(node[leaf])(value)
  val = pipeline.load_split(config, 'val')
  trainer = train.Trainer(localizers.get(config), config, 1)
  for seed in range(args.seeds):
    params = trainer.init_state(jax.random.key(seed)).params
    metrics = infer.evaluate_proposals(
        val, infer.predict_split(trainer.predictor, params, val, config.test.batch_size))
    print(f'seed {seed}: ' + ' '.join(f'{k} {v:.4f}' for k, v in metrics.items()))
  sys.stdout.flush()


if __name__ == '__main__':
  main()

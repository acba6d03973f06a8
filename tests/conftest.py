"""Shared test set-up: tal_jax first (XLA flags), a persistent XLA cache."""

import functools
import gzip
import json
import os
import shutil
import tempfile

import tal_jax  # noqa: F401
from tal_jax import localizers
import jax
import numpy as np
import pytest

# Several tests build the same tiny models; the persistent cache lets them
# share compiled programs within and across runs of the suite.
jax.config.update('jax_compilation_cache_dir',
                  os.path.join(tempfile.gettempdir(), 'tal_jax_test_xla'))
jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.5)

# Public annotation and result files shipped with the tests, gzipped
# (tests/data/README.md names the source of each).
DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data')


@functools.cache
def numpy_sorts_like_reference() -> bool:
  """Whether this machine's numpy orders equal keys as the machine that wrote
  the MMAction2 fixtures did. MMAction2 sorts with numpy's default (unstable)
  argsort, and tal_jax runs the same argsort to match it; its tie order depends
  on the numpy version and on the CPU (numpy picks its sort by SIMD width), so
  tests of tied orders compare exactly only where it reproduces the tie order
  of tests/golden/postprocess_bmn.npz's candidates."""
  path = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'golden',
                      'postprocess_bmn.npz')
  with np.load(path) as g:
    scores, counts, ref = g['cand'][:, -1], g['cand_counts'], g['cand_argsort']
  ends = np.cumsum(counts)
  return all(np.array_equal(scores[a:b].argsort(), ref[a:b])
             for a, b in zip(ends - counts, ends))


@pytest.fixture(scope='session')
def real_data(tmp_path_factory):
  """real_data(name) -> the path of tests/data/<name>.gz decompressed (once
  per session), e.g. real_data('anet_anno_action.json')."""
  out = tmp_path_factory.mktemp('real_data')

  def path(name):
    dst = out / name
    if not dst.exists():
      with gzip.open(os.path.join(DATA_DIR, name + '.gz'), 'rb') as src:
        with open(dst, 'wb') as f:
          shutil.copyfileobj(src, f)
    return str(dst)

  return path


def restore_checkpoint(workdir, config, step=None):
  """{'params', 'opt_state', 'meta'} of a workdir's checkpoint (latest when
  `step` is None), restored onto this process's devices."""
  from tal_jax.engine import checkpointing  # pylint: disable=g-import-not-at-top
  from tal_jax.engine import trainer as train  # pylint: disable=g-import-not-at-top
  mngr = checkpointing.manager(workdir, read_only=True)
  step = mngr.latest_step() if step is None else step
  trainer = train.Trainer(localizers.get(config), config, 1)
  like = trainer.init_state(jax.random.key(0))
  out = checkpointing.restore(mngr, step, like.params, like.opt_state,
                              trainer.replicated, config)
  mngr.close()
  return out


def metrics_rows(workdir):
  """The rows of a run's <workdir>/metrics.jsonl, in order."""
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    return [json.loads(line) for line in f]

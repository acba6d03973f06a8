"""Two real processes on localhost (jax.distributed, gloo CPU collectives), each
with 2 simulated devices, train tiny BMN and match the single-process run.

The command is the one in README.md's "Multiple devices and hosts" section; only
the coordinator port and the folder are replaced.
"""

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import tempfile

import numpy as np
import pytest

import tal_jax  # noqa: F401
import jax

from tal_jax import config_utils
from tal_jax.engine import loop
from tal_jax import localizers
from conftest import restore_checkpoint

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README_PORT = 'localhost:12345'
README_DIR = '/tmp/tal_jax_2proc'
# Data and compiled programs persist between test runs (as in conftest.py).
CACHE_DIR = os.path.join(tempfile.gettempdir(), 'tal_jax_test_multihost')


def readme_command() -> tuple[dict[str, str], list[str]]:
  """(environment, argv) of one process in the README's localhost example."""
  with open(os.path.join(ROOT, 'README.md')) as f:
    text = f.read()
  section = text.split('## Multiple devices and hosts', 1)[1].split('\n## ')[0]
  blocks = re.findall(r'```bash\n(.*?)```', section, re.S)
  block = next(b for b in blocks if README_PORT in b)
  body = re.search(r'for i in 0 1; do\n(.*?)&\ndone; wait', block, re.S)
  tokens = shlex.split(body.group(1).replace('\\\n', ' '))
  n_env = next(i for i, t in enumerate(tokens) if t == 'python')
  env = dict(t.split('=', 1) for t in tokens[:n_env])
  return env, tokens[n_env:]


def free_port() -> int:
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def substitute(text: str, port: int, folder: str, process_id: int) -> str:
  return (text.replace(README_PORT, f'localhost:{port}')
          .replace(README_DIR + '/cache', CACHE_DIR)
          .replace(README_DIR, folder).replace('$i', str(process_id)))


def run_two_processes(folder: str) -> list[subprocess.CompletedProcess]:
  env_tpl, argv_tpl = readme_command()
  port = free_port()
  procs = []
  for i in range(2):
    env = {**os.environ, **{k: substitute(v, port, folder, i)
                            for k, v in env_tpl.items()}}
    argv = [sys.executable] + [substitute(a, port, folder, i)
                               for a in argv_tpl[1:]]
    procs.append(subprocess.Popen(argv, cwd=ROOT, env=env, text=True,
                                  stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE))
  results = []
  try:
    for p in procs:
      out, err = p.communicate(timeout=300)
      results.append(subprocess.CompletedProcess(p.args, p.returncode, out,
                                                 err))
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
        p.wait()
  return results


def jsonl(path):
  with open(path) as f:
    return [json.loads(l) for l in f]


@pytest.fixture(scope='module')
def two_and_one(tmp_path_factory):
  folder = str(tmp_path_factory.mktemp('two_proc'))
  config = config_utils.load_config(os.path.join(ROOT, 'configs/bmn.py:tiny'))
  config.train.num_epochs = 1
  config.data.cache_dir = CACHE_DIR
  single = os.path.join(folder, 'single')
  loop.train_and_evaluate(localizers.get(config), config, single, quiet=True)
  results = run_two_processes(folder)
  for r in results:
    assert r.returncode == 0, r.stderr[-3000:]
  return os.path.join(folder, 'work'), single, config, results


def test_readme_example_is_two_processes_of_two_devices():
  env, argv = readme_command()
  assert env == {'XLA_FLAGS': '--xla_force_host_platform_device_count=2',
                 'JAX_PLATFORMS': 'cpu', 'JAX_COORDINATOR_ADDRESS': README_PORT,
                 'JAX_NUM_PROCESSES': '2', 'JAX_PROCESS_ID': '$i'}
  assert argv[:3] == ['python', '-m', 'tal_jax.main']


def test_two_processes_equal_one_process(two_and_one):
  work, single, config, _ = two_and_one
  a = restore_checkpoint(work, config, 4)
  b = restore_checkpoint(single, config, 4)
  for x, y in zip(jax.tree.leaves((a['params'], a['opt_state'])),
                  jax.tree.leaves((b['params'], b['opt_state']))):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5,
                               atol=2e-6)
  assert a['meta']['epoch'] == 1


def test_process_0_alone_writes_logs_and_the_same_metrics(two_and_one):
  work, single, _, results = two_and_one
  two, one = jsonl(os.path.join(work, 'metrics.jsonl')), jsonl(
      os.path.join(single, 'metrics.jsonl'))
  # One line per log step and per evaluation, not one per process.
  assert [(l['split'], l['step']) for l in two] == [
      (l['split'], l['step']) for l in one] == [('train', 4), ('val', 4)]
  for k in ('AR@1', 'AR@5', 'AR@10', 'AR@100', 'AUC'):
    assert two[1][k] == pytest.approx(one[1][k], abs=1e-9), k
  assert two[0]['loss'] == pytest.approx(one[0]['loss'], rel=1e-5)
  assert 'epoch 1: AR@1' in results[0].stdout
  assert 'epoch 1' not in results[1].stdout
  assert os.path.isfile(os.path.join(work, 'config.json'))


def test_process_0_alone_prints_the_startup_line(two_and_one):
  _, _, config, results = two_and_one
  # Gloo's C++ logging shares the process's stdout and may land on the same
  # line, so the line is looked for as a substring, once.
  expected = (
      'train: backend=cpu, devices=4 x cpu, process=0/2, mesh=data:4, '
      f'global_batch={config.train.batch_size}, '
      f'per_device_batch={config.train.batch_size // 4}, dtype=float32')
  assert results[0].stdout.count(': backend=') == 1
  assert expected in results[0].stdout
  assert ': backend=' not in results[1].stdout

"""pyproject.toml lists every package; configs load by name from any folder."""

import os
import subprocess
import sys
import tomllib

from tal_jax import config_utils

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_pyproject_lists_every_package():
  with open(os.path.join(ROOT, 'pyproject.toml'), 'rb') as f:
    setuptools = tomllib.load(f)['tool']['setuptools']
  found = sorted(
      os.path.relpath(d, ROOT).replace(os.sep, '.')
      for d, _, files in os.walk(os.path.join(ROOT, 'tal_jax'))
      if '__init__.py' in files)
  assert sorted(setuptools['packages']) == sorted(found + ['tal_jax.configs'])
  assert setuptools['package-dir'] == {'tal_jax.configs': 'configs'}


def test_resolve_config_spec(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  bundled = os.path.join(config_utils.configs_dir(), 'bmn.py')
  assert bundled == os.path.join(ROOT, 'configs', 'bmn.py')
  for spec in ('bmn:tiny', 'bmn.py:tiny', 'configs/bmn.py:tiny'):
    assert config_utils.resolve_config_spec(spec) == bundled + ':tiny'
  assert config_utils.resolve_config_spec('bsn_pem') == os.path.join(
      ROOT, 'configs', 'bsn_pem.py')
  # A file that exists is taken as given; other folders are never redirected.
  (tmp_path / 'configs').mkdir()
  (tmp_path / 'configs' / 'bmn.py').write_text('')
  assert config_utils.resolve_config_spec('configs/bmn.py') == 'configs/bmn.py'
  assert config_utils.resolve_config_spec('mine/bmn.py') == 'mine/bmn.py'
  assert config_utils.resolve_config_spec('nope') == 'nope'
  assert config_utils.load_config('bsn_tem:tiny').model_name == 'bsn_tem'


def test_main_finds_configs_from_another_folder(tmp_path):
  # The config loads (its keys are checked) although cwd is not the checkout.
  env = dict(os.environ, PYTHONPATH=ROOT)
  out = subprocess.run(
      [sys.executable, '-m', 'tal_jax.main', '--config=configs/bmn.py:tiny',
       f'--workdir={tmp_path / "w"}', '--config.train.num_epoch=1'],
      cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
  assert out.returncode == 2
  assert out.stderr.strip() == (
      "error: unknown config key 'config.train.num_epoch'; did you mean "
      'train.num_epochs, train.eval_every_epochs, train.momentum?')
  missing = subprocess.run(
      [sys.executable, '-m', 'tal_jax.main', '--config=configs/nope.py'],
      cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
  assert missing.returncode == 2
  assert missing.stderr.strip() == 'error: config file not found: configs/nope.py'

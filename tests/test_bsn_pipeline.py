"""The BSN chain end to end on the tiny configs: TEM -> PGM -> PEM."""

import argparse
import json
import os
import shutil

import numpy as np
import pytest

import tal_jax  # noqa: F401

from tal_jax.localizers.bsn import definition as bsn
from tal_jax.localizers.bsn import files as bsn_io
from tal_jax import config_utils
from tal_jax import errors
from tal_jax.localizers.bsn import pgm
from tal_jax.data import activitynet
from tal_jax.data import pipeline
from tal_jax.features import random_init
from tal_jax.features import tsn
from tal_jax.features import video
from tal_jax.tools import bsn_pipeline
from tal_jax.tools import infer
from tal_jax.tools import infer_bsn
from tal_jax.engine import loop
from tal_jax import localizers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope='module')
def chain(tmp_path_factory):
  base = tmp_path_factory.mktemp('bsn')
  args = argparse.Namespace(
      workdir=str(base / 'work'), preset='tiny', cache_dir=str(base / 'cache'),
      feature_dir='', ann_file_train='', ann_file_val='', ann_file_full='',
      quiet=True)
  metrics = bsn_pipeline.run_pipeline(args)
  return args, metrics


def test_chain_writes_every_stage(chain):
  args, metrics = chain
  w = args.workdir
  assert set(metrics) == {'AR@1', 'AR@5', 'AR@10', 'AR@100', 'AUC'}
  assert 0 < metrics['AUC'] < 100
  for path in ('tem/tem_results.npz', 'tem/metrics.jsonl', 'pgm/pgm_train.npz',
               'pgm/pgm_test.npz', 'pem/results.json', 'pem/metrics.json'):
    assert os.path.isfile(os.path.join(w, path)), path
  saved = json.load(open(os.path.join(w, 'pem/metrics.json')))
  assert saved == pytest.approx(metrics)
  results = json.load(open(os.path.join(w, 'pem/results.json')))['results']
  assert len(results) == 8  # the tiny val split
  assert all(len(v) <= 100 for v in results.values())


def test_tem_results_cover_train_and_val(chain):
  args, _ = chain
  tem = bsn.load_tem_results(os.path.join(args.workdir, 'tem',
                                          bsn.TEM_RESULTS))
  assert len(tem) == 16 + 8
  out = np.stack(list(tem.values()))
  assert out.shape == (24, 16, 3)
  assert np.all((out > 0) & (out < 1))


def test_pgm_file_equals_in_memory_generation(chain):
  args, _ = chain
  config = config_utils.load_config(os.path.join(ROOT, 'configs/bsn_pgm.py:tiny'))
  config.data.cache_dir = args.cache_dir
  paths = pipeline.annotation_paths(config)
  records = activitynet.load_annotations(paths['ann_file_train'])
  tem = bsn.load_tem_results(os.path.join(args.workdir, 'tem',
                                          bsn.TEM_RESULTS))
  names = sorted(n for n, r in records.items() if r['annotations'])
  want_p, want_f = pgm.proposal_generation(
      np.stack([tem[n] for n in names]),
      [pgm.pgm_gt_segments(records[n]) for n in names], top_k=500)
  got = bsn.load_pgm(os.path.join(args.workdir, 'pgm', 'pgm_train.npz'))
  assert sorted(got) == names
  for n, p, f in zip(names, want_p, want_f):
    np.testing.assert_array_equal(got[n][0], p)
    np.testing.assert_array_equal(got[n][1], f)


def test_mmaction2_files_round_trip(chain, tmp_path):
  args, _ = chain
  tem = bsn.load_tem_results(os.path.join(args.workdir, 'tem',
                                          bsn.TEM_RESULTS))
  names = sorted(tem)[:3]
  path = str(tmp_path / 'tem.npz')
  bsn.write_tem_results(path, names, np.stack([tem[n] for n in names]),
                        str(tmp_path / 'csv'))
  for n in names:
    rows = bsn_io.read_tem_result(bsn_io.video_path(str(tmp_path / 'csv'), n,
                                                    '.csv'))
    np.testing.assert_array_equal(rows[:, :3], tem[n])


def test_pem_without_pgm_dir_is_a_clear_error(tmp_path):
  config = config_utils.load_config(os.path.join(ROOT, 'configs/bsn_pem.py:tiny'))
  config.data.cache_dir = str(tmp_path)
  with pytest.raises(errors.TalError, match='pgm_dir'):
    loop.train_and_evaluate(localizers.get(config), config, str(tmp_path / 'w'), quiet=True)


def test_pgm_without_tem_results_is_a_clear_error(tmp_path):
  with pytest.raises(errors.TalError, match='TEM results not found'):
    bsn.load_tem_results(str(tmp_path / 'tem_results.npz'))


# ------------------------------------------------ tools.infer on the workdir


@pytest.fixture(scope='module')
def val_features(chain, tmp_path_factory):
  """(folder of the val videos' .npy features [T, D], val annotation file)."""
  args, _ = chain
  config = config_utils.load_config(
      os.path.join(ROOT, 'configs/bsn_tem.py:tiny'))
  config.data.cache_dir = args.cache_dir
  videos = pipeline.load_split(config, 'val')
  folder = tmp_path_factory.mktemp('val_features')
  for name, x in zip(videos.names, videos.features):
    np.save(folder / f'{name}.npy', np.asarray(x))
  return str(folder), pipeline.annotation_paths(config)['ann_file_val']


def _rows(results):
  return {v: np.array([i['segment'] + [i['score']] for i in items])
          for v, items in results.items()}


def test_infer_equals_the_pipelines_pem_test(chain, val_features, tmp_path,
                                             capsys):
  args, _ = chain
  folder, ann_file = val_features
  out = str(tmp_path / 'props.json')
  got = infer.main(['--workdir', args.workdir, '--features', folder,
                    '--ann-file', ann_file, '--out', out, '--top', '2',
                    '--quiet'])
  with open(os.path.join(args.workdir, 'pem', 'results.json')) as f:
    want = _rows(json.load(f)['results'])
  with open(out) as f:
    written = _rows(json.load(f)['results'])
  assert len(want) == 8 and sorted(written) == sorted(want)
  for video, rows in want.items():
    assert rows.shape == (100, 3)
    np.testing.assert_allclose(written[video], rows, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got['v_' + video], rows, rtol=1e-6, atol=1e-6)
  first = sorted(want)[0]
  s, e, score = want[first][0]
  text = capsys.readouterr().out
  assert f'v_{first} (' in text and 'top 2 of 100 proposals' in text
  assert f'  1. {s:9.2f} - {e:9.2f} s   score {score:.4f}' in text


def test_infer_plots_the_tem_curves(chain, val_features, tmp_path, capsys):
  args, _ = chain
  folder, _ = val_features
  png = str(tmp_path / 'v.png')
  got = infer.main(['--workdir', args.workdir, '--features',
                    os.path.join(folder, 'v_synval00000.npy'),
                    '--duration-second', '50', '--out',
                    str(tmp_path / 'p.json'), '--plot', png, '--quiet'])
  rows = got['v_synval00000']
  assert len(rows) == 100
  assert rows[:, 0].min() >= 0 and rows[:, 1].max() <= 50
  assert os.path.getsize(png) > 0
  assert 'wrote ' + png in capsys.readouterr().out


def test_pgm_config_is_the_pipelines_or_the_configs(chain, tmp_path):
  args, _ = chain
  saved = infer_bsn.pgm_config(args.workdir)
  assert saved.test_top_k == 1000 and saved.peak_threshold == 0.5
  # A workdir from before pgm/config.json: configs/bsn_pgm.py's values.
  assert infer_bsn.pgm_config(str(tmp_path)).to_dict() == saved.to_dict()


def _cli_error(argv, capsys) -> str:
  with pytest.raises(SystemExit) as e:
    errors.run_cli(lambda: infer.main(argv))
  assert e.value.code == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and err[0].startswith('error: ')
  return err[0]


def test_infer_bad_pipeline_workdirs(chain, val_features, tmp_path, capsys):
  args, _ = chain
  folder, _ = val_features
  no_pem = tmp_path / 'no_pem'
  shutil.copytree(os.path.join(args.workdir, 'tem'), no_pem / 'tem')
  line = _cli_error(['--workdir', str(no_pem), '--features', folder,
                     '--quiet'], capsys)
  assert 'without pem/config.json' in line and str(no_pem) in line
  (no_pem / 'pem').mkdir()
  shutil.copy(os.path.join(args.workdir, 'pem', 'config.json'),
              no_pem / 'pem')
  line = _cli_error(['--workdir', str(no_pem), '--features', folder,
                     '--quiet'], capsys)
  assert 'no checkpoints in' in line and str(no_pem / 'pem') in line
  line = _cli_error(['--workdir', args.workdir, '--features', folder,
                     '--checkpoint', 'x', '--quiet'], capsys)
  assert '--checkpoint does not apply to a BSN pipeline workdir' in line
  swapped = tmp_path / 'swapped'
  shutil.copytree(os.path.join(args.workdir, 'tem'), swapped / 'pem')
  shutil.copytree(os.path.join(args.workdir, 'pem'), swapped / 'tem')
  line = _cli_error(['--workdir', str(swapped), '--features', folder,
                     '--quiet'], capsys)
  assert "model 'bsn_pem', expected 'bsn_tem'" in line


def test_infer_video_through_the_bsn_chain(chain, tmp_path, capsys):
  """A generated video -> TSN features (random-init width-8 checkpoints,
  200 + 200 scores = TEM's 400 channels) -> TEM -> PGM -> PEM."""
  args, _ = chain
  rgb = random_init.write_checkpoint(str(tmp_path / 'rgb.pth'), tsn.RGB,
                                     width=8, seed=1)
  flow = random_init.write_checkpoint(str(tmp_path / 'flow.pth'), tsn.FLOW,
                                      width=8, seed=2)
  clip = str(tmp_path / 'clip_a.mp4')
  video.write_video(clip, video.example_frames(40))
  out = str(tmp_path / 'props.json')
  got = infer.main(['--workdir', args.workdir, '--video', clip,
                    '--rgb-checkpoint', rgb, '--flow-checkpoint', flow,
                    '--out', out, '--top', '3', '--quiet'])
  rows = got['v_clip_a']
  # 40 frames at 25 fps: 1.6 s.
  assert 0 < len(rows) <= 100
  assert rows[:, 0].min() >= 0 and rows[:, 1].max() <= 1.6 + 1e-6
  assert np.all(rows[:-1, 2] >= rows[1:, 2])
  with open(out) as f:
    assert len(json.load(f)['results']['clip_a']) == len(rows)
  assert 'v_clip_a (1.60 s): top 3' in capsys.readouterr().out

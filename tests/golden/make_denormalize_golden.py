"""Writes tests/golden/denormalize_proposal.json from MMAction2 0.24.1.

Rerun (from the repository root) with the 0.24.1 reference environment (see
make_ssn_golden.py):

  "$TAL_JAX_REFENV"/mmaction2-0.24.1/bin/python tests/golden/make_denormalize_golden.py

A synthetic normalised TAG proposal list (6 videos: one without gts, one
without proposals, one without either, one whose rawframes folder is empty;
awkward fractions such as 0.333333 and 0.29 whose products with num_frames
fall just under an integer, scores that sit on '{:.04f}' rounding edges) and
rawframes folders of empty files (consecutive img_%05d.jpg plus extra names:
gaps, other extensions, flow files, upper case, a sub folder named img_*) go
through upstream's `parse_directory` (level 1) and
`process_norm_proposal_file` (tools/data/denormalize_proposal_file.py,
imported without running its argparse). The JSON holds the input text, the
folders ({video: {"img_frames": N, "extra": [names; "x/" is a folder]}}),
upstream's counts and its output text.
"""

import importlib.util
import json
import os
import sys
import tempfile

import mmaction

MIM = os.path.join(os.path.dirname(mmaction.__file__), '.mim')
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                   'denormalize_proposal.json')

FOLDERS = {
    'video_validation_0000051': {'img_frames': 100, 'extra': []},
    'video_validation_0000052': {'img_frames': 300, 'extra': []},
    'video_validation_0000053': {
        'img_frames': 7,
        'extra': ['img_00009.jpg', 'img_00012.png', 'IMG_00020.jpg',
                  'x_img_00021.jpg', 'flow_x_00001.jpg', 'flow_y_00001.jpg',
                  'img_sub/', 'img_']},
    'video_test_0000004': {'img_frames': 5666, 'extra': []},
    'video_test_0000005': {'img_frames': 1000, 'extra': []},
    'video_test_0000006': {'img_frames': 0, 'extra': ['thumbs.db']},
    'video_unused': {'img_frames': 3, 'extra': []},
}

INPUT = """# 1
video_validation_0000051
1
1
2
7 0.29 0.57
7 0.07 0.58
5
7 0.12345 0.00005 0.29 0.57
7 0.99995 0.00015 0.333333 0.666667
0 0.0000 0.0000 0.01 0.99
7 1e-3 0.5 0.0 1.0
12 0.00125 0.125 0.155 0.555
# 2
video_validation_0000052
1
1.0
0
3
3 0.9684 0.9996 0.333333 0.666666
3 0.8765 1.0000 0.1 0.7
3 0.4444444 0.55555 0.0654 0.9169
# 3
video_validation_0000053
1
1
1
4 0.2 0.9
0
# 4
video_test_0000004
1
1
3
8 0.0229 0.0326
8 0.1468 0.2005
8 0.2299 0.2437
4
8 0.0620 0.0620 0.1394 1.0000
8 0.1656 0.1656 0.1394 0.4622
8 0.08335 0.08325 0.6962 1.0000
8 0.09605 0.09615 0.7365 1.0000
# 5
video_test_0000005
1
1
0
0
# 6
video_test_0000006
1
1
1
2 0.1 0.9
1
2 0.5 0.5 0.1 0.9

"""


def make_folders(root):
  for video, spec in FOLDERS.items():
    folder = os.path.join(root, video)
    os.makedirs(folder)
    names = [f'img_{i:05d}.jpg' for i in range(1, spec['img_frames'] + 1)]
    for name in names + spec['extra']:
      if name.endswith('/'):
        os.makedirs(os.path.join(folder, name))
      else:
        open(os.path.join(folder, name), 'w').close()


def load_upstream():
  sys.path.insert(0, MIM)  # tools.data.parse_file_list
  path = os.path.join(MIM, 'tools', 'data', 'denormalize_proposal_file.py')
  spec = importlib.util.spec_from_file_location('denormalize_upstream', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  from tools.data.parse_file_list import parse_directory  # pylint: disable=g-import-not-at-top
  return module.process_norm_proposal_file, parse_directory


def main():
  process, parse_directory = load_upstream()
  with tempfile.TemporaryDirectory() as tmp:
    frames = os.path.join(tmp, 'rawframes')
    make_folders(frames)
    norm = os.path.join(tmp, 'synthetic_tag_normalized_proposal_list.txt')
    with open(norm, 'w') as f:
      f.write(INPUT)
    frame_dict = parse_directory(frames)
    process(norm, frame_dict)
    with open(os.path.join(tmp, 'synthetic_tag_proposal_list.txt')) as f:
      output = f.read()
  counts = {video: frame_dict[video][1] for video in sorted(frame_dict)}
  with open(OUT, 'w') as f:
    json.dump({'input': INPUT, 'folders': FOLDERS, 'counts': counts,
               'output': output}, f, indent=1)
  print(output)
  print(counts)
  print(f'wrote {OUT}')


if __name__ == '__main__':
  main()

"""Golden fixture for tests/test_splits.py: MMAction2's split files, as hashes.

Runs MMAction2 1.2.0's tools/data/activitynet/process_annotations.py (installed
in the reference environment, unmodified) on the real files shipped in
tests/data/ (gzipped) and records the sha256 and video count of each
anet_anno_{train,val,test,full}.json it writes. Rerun from the checkout with
the reference environment (tests/golden/README.md):

  "$TAL_JAX_REFENV"/mmaction2-1.2.0/bin/python tests/golden/make_anet_splits.py

which rewrites tests/golden/anet_splits.json.
"""

import gzip
import hashlib
import json
import os
import runpy
import shutil
import tempfile

import mmaction

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                    'data')
SCRIPT = os.path.join(os.path.dirname(mmaction.__file__), '.mim', 'tools',
                      'data', 'activitynet', 'process_annotations.py')
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                   'anet_splits.json')


def main():
  with tempfile.TemporaryDirectory() as root:
    # The script reads and writes '../../../data/ActivityNet' from its cwd.
    cwd = os.path.join(root, 'a', 'b', 'c')
    data = os.path.join(root, 'data', 'ActivityNet')
    os.makedirs(cwd)
    os.makedirs(data)
    for name in ('anet_anno_action.json', 'video_info_new.csv'):
      with gzip.open(os.path.join(DATA, name + '.gz'), 'rb') as src:
        with open(os.path.join(data, name), 'wb') as dst:
          shutil.copyfileobj(src, dst)
    old = os.getcwd()
    os.chdir(cwd)
    try:
      runpy.run_path(SCRIPT, run_name='__main__')
    finally:
      os.chdir(old)
    golden = {}
    for split in ('train', 'val', 'test', 'full'):
      path = os.path.join(data, f'anet_anno_{split}.json')
      with open(path, 'rb') as f:
        raw = f.read()
      golden[split] = {'sha256': hashlib.sha256(raw).hexdigest(),
                       'num_videos': len(json.loads(raw))}
  with open(OUT, 'w') as f:
    json.dump(golden, f, indent=1)
  print(golden)


if __name__ == '__main__':
  main()

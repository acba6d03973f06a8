"""MMAction2 0.24.1 `ssn_r50_450e_thumos14_rgb_train.py`'s train_cfg, as a
plain dict, for the scripts that build upstream's SSN in the reference
environment (tests/golden/make_ssn*_golden.py, experiments/bench_ssn_frames.py).
"""

TRAIN_CFG = dict(ssn=dict(
    assigner=dict(positive_iou_threshold=0.7, background_iou_threshold=0.01,
                  incomplete_iou_threshold=0.3,
                  background_coverage_threshold=0.02,
                  incomplete_overlap_threshold=0.01),
    sampler=dict(num_per_video=8, positive_ratio=1, background_ratio=1,
                 incomplete_ratio=6, add_gt_as_proposals=True),
    loss_weight=dict(comp_loss_weight=0.1, reg_loss_weight=0.1),
    debug=False))

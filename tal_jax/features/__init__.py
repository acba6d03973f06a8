"""Feature extraction from videos, MMAction2 1.2.0's ActivityNet route.

video.py (PyAV decoding, the generated example video) -> sampling.py
(UntrimmedSampleFrames) -> flow.py (TV-L1 optical flow) -> tsn.py (the TSN-R50
RGB / flow recognisers, loaded from MMAction2 .pth files) -> pooling.py (100
bins, RGB + flow concatenated) -> extract.py (one video end to end, the files).
"""

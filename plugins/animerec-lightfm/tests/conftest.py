"""Every test session gets its own animerec-bench data home (split caches), never the user's."""

from __future__ import annotations

import os
import tempfile

os.environ["ANIMEREC_BENCH_HOME"] = tempfile.mkdtemp(prefix="animerec-lightfm-test-home-")

"""The split child: ``python -m animerec_bench.execution.split_child SPEC`` makes (or loads and
verifies) one split and caches it, so the parent of a run never holds the data set's arrays
(see :mod:`animerec_bench.data.split_file`, whose ``child_command`` starts it).

It lives in execution/ because it loads the plugins (to find the data set), a layer above data/.
"""

from __future__ import annotations

import json
import os
import sys

from animerec_bench.errors import UserError


def main(argv: list[str] | None = None) -> int:
    """Make one split; exit 0, or 2 with a JSON line ``{"user_error": ...}`` on stdout for a
    user's mistake."""
    args = sys.argv[1:] if argv is None else argv
    spec = json.loads(args[0])
    try:
        from animerec_bench.data.protocol import get_protocol
        from animerec_bench.plugins.registry import load_registry

        dataset = load_registry(spec.get("plugins_dir")).dataset(spec["dataset"])
        get_protocol(spec["protocol"]).split(dataset, int(spec["seed"]))
    except UserError as exc:
        print(json.dumps({"user_error": str(exc)}), flush=True)
        return 2
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    raise SystemExit(main())

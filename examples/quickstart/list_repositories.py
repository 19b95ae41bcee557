"""List the registry's repositories.

python examples/quickstart/list_repositories.py
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

from connect import sync_client


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] = os.environ) -> int:
    with sync_client(environ) as client:
        for name in client.list_repository_names():
            print(name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

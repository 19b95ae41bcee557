"""List a repository's tags, the most recently updated first.

python examples/quickstart/list_tags.py quickstart/hello
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence

from connect import sync_client


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] = os.environ) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("repository")
    args = parser.parse_args(argv)
    with sync_client(environ) as client:
        for tag in client.list_tag_properties(args.repository, order_by="timedesc"):
            print(f"{tag.name}\t{tag.digest}\t{tag.last_updated_on}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

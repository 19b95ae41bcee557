"""Delete all but the newest three images of every repository (`--keep N` for another count).

    python examples/quickstart/delete_old_images.py --dry-run
    python examples/quickstart/delete_old_images.py

"Image" here is what the quickstart means: a manifest, newest by last update. An index's
platform images, signatures and SBOMs are manifests too, so on a registry that has them this
count is too crude: `acr-cleanup plan` with a `keepLatest: 3` rule keeps them with their image.
Locked manifests (`can_delete` or `can_write` false) are left alone.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence

from connect import sync_client

from acr_core.names import short_digest


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] = os.environ) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=int, default=3, help="newest images kept (default 3)")
    parser.add_argument("--dry-run", action="store_true", help="only say what would go")
    args = parser.parse_args(argv)
    verb = "would delete" if args.dry_run else "deleted"
    with sync_client(environ) as client:
        for repository in list(client.list_repository_names()):
            # Read the whole listing before deleting: deleting while paging could shift pages.
            newest_first = list(client.list_manifest_properties(repository, order_by="timedesc"))
            for manifest in newest_first[args.keep :]:
                name = f"{repository}@{short_digest(manifest.digest)} ({', '.join(manifest.tags)})"
                if not manifest.attributes.deletable:
                    print(f"kept {name}: locked")
                elif args.dry_run or client.delete_manifest(repository, manifest.digest):
                    print(f"{verb} {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

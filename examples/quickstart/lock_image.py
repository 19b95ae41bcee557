"""Lock a tag and the manifest it names: neither can be overwritten or deleted any more.

    python examples/quickstart/lock_image.py quickstart/hello v1
    python examples/quickstart/lock_image.py quickstart/hello v1 --unlock

Both locks matter: ACR checks the tag's and the manifest's `can_write`/`can_delete` separately,
and a manifest is deleted by digest, whatever its tags say.
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
    parser.add_argument("tag")
    parser.add_argument("--unlock", action="store_true", help="allow writes and deletes again")
    args = parser.parse_args(argv)
    allowed = args.unlock
    with sync_client(environ) as client:
        tag = client.update_tag_properties(
            args.repository, args.tag, can_write=allowed, can_delete=allowed
        )
        manifest = client.update_manifest_properties(
            args.repository, tag.digest, can_write=allowed, can_delete=allowed
        )
    state = "unlocked" if allowed else "locked"
    print(
        f"{args.repository}:{tag.name} {state} (can_write={tag.attributes.write_enabled}, "
        f"can_delete={tag.attributes.delete_enabled})"
    )
    print(
        f"{args.repository}@{manifest.digest} {state} "
        f"(can_write={manifest.attributes.write_enabled}, "
        f"can_delete={manifest.attributes.delete_enabled})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

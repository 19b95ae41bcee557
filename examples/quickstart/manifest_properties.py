"""Show the properties of the manifest a tag (or digest) names.

python examples/quickstart/manifest_properties.py quickstart/hello latest
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime

from connect import sync_client


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] = os.environ) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("repository")
    parser.add_argument("tag_or_digest")
    args = parser.parse_args(argv)
    with sync_client(environ) as client:
        manifest = client.get_manifest_properties(args.repository, args.tag_or_digest)
    locks = manifest.attributes
    print(f"digest:        {manifest.digest}")
    print(f"tags:          {', '.join(manifest.tags) or '(none)'}")
    print(f"media type:    {manifest.media_type}")
    print(f"platform:      {manifest.os}/{manifest.architecture}")
    print(f"size:          {manifest.size_in_bytes} bytes")
    print(f"created:       {_when(manifest.created_on)}")
    print(f"last updated:  {_when(manifest.last_updated_on)}")
    print(f"can delete:    {locks.delete_enabled}")
    print(f"can write:     {locks.write_enabled}")
    return 0


def _when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC" if moment else "(not recorded)"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

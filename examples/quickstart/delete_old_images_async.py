"""The same as delete_old_images.py with the async client: repositories are read, and their
old images deleted, concurrently (the client's own pace limits and retries still apply).

    python examples/quickstart/delete_old_images_async.py --dry-run
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Mapping, Sequence

from connect import async_client

from acr_core import AcrClient
from acr_core.models import ManifestProperties
from acr_core.names import short_digest

# At most this many deletions in flight: ACR's write budget is per minute (Basic 100, Standard
# 500, Premium 2000 WriteOps), so more would only be throttled.
IN_FLIGHT = 8


async def clean(client: AcrClient, repository: str, keep: int, dry_run: bool) -> list[str]:
    """Delete the manifests of `repository` older than its `keep` newest; a line for each."""
    listing = client.list_manifest_properties(repository, order_by="timedesc")
    newest_first = [manifest async for manifest in listing]
    slots = asyncio.Semaphore(IN_FLIGHT)

    async def delete(manifest: ManifestProperties) -> str | None:
        name = f"{repository}@{short_digest(manifest.digest)} ({', '.join(manifest.tags)})"
        if not manifest.attributes.deletable:
            return f"kept {name}: locked"
        if dry_run:
            return f"would delete {name}"
        async with slots:
            deleted = await client.delete_manifest(repository, manifest.digest)
        return f"deleted {name}" if deleted else None  # None: someone else deleted it first

    lines = await asyncio.gather(*(delete(manifest) for manifest in newest_first[keep:]))
    return [line for line in lines if line is not None]


async def run(environ: Mapping[str, str], keep: int, dry_run: bool) -> None:
    async with async_client(environ) as client:
        repositories = [name async for name in client.list_repository_names()]
        results = await asyncio.gather(*(clean(client, r, keep, dry_run) for r in repositories))
    for lines in results:
        for line in lines:
            print(line)


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] = os.environ) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=int, default=3, help="newest images kept (default 3)")
    parser.add_argument("--dry-run", action="store_true", help="only say what would go")
    args = parser.parse_args(argv)
    asyncio.run(run(environ, args.keep, args.dry_run))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Start an emulator seeded with registry.json on a free port, run every example against it in
turn, and stop it: `make examples`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import delete_old_images
import delete_old_images_async
import list_repositories
import list_tags
import lock_image
import manifest_properties

HERE = Path(__file__).resolve().parent
Main = Callable[..., int]
# Each example with its arguments, in an order that tells a story: look, lock, then clean up.
STEPS: list[tuple[Main, list[str]]] = [
    (list_repositories.main, []),
    (list_tags.main, ["quickstart/hello"]),
    (manifest_properties.main, ["quickstart/hello", "latest"]),
    (lock_image.main, ["quickstart/hello", "v1"]),
    (delete_old_images_async.main, ["--dry-run"]),
    (delete_old_images.main, []),
    (list_tags.main, ["quickstart/hello"]),
]


def main(argv: Sequence[str] | None = None) -> int:
    command = [sys.executable, "-m", "acr_emulator", "--port", "0"]
    command += ["--fixture", str(HERE / "registry.json")]
    # A fixed argv: this interpreter and the emulator module.
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as emulator:  # noqa: S603
        try:
            assert emulator.stdout is not None
            line = json.loads(emulator.stdout.readline())
            environ = {
                **os.environ,
                "ACR_REGISTRY": line["url"],
                "ACR_USERNAME": line["admin_username"],
                "ACR_PASSWORD": line["admin_password"],
                "ACR_CA_FILE": line["ca_file"],
            }
            for example, arguments in STEPS:
                name = example.__module__
                print(f"\n$ python examples/quickstart/{name}.py {' '.join(arguments)}".rstrip())
                sys.stdout.flush()
                example(arguments, environ)
        finally:
            emulator.terminate()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

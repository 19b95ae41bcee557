"""No credential reaches a log record, stdout or stderr, with every logger at DEBUG.

The emulator is served over HTTPS behind `Recorder`, an ASGI wrapper that writes down every
secret that crosses the wire (Authorization headers, Basic user:password and its base64, the
AAD token in the exchange, refresh and access tokens in token requests and responses) and, when
told, answers a request with a 503 whose body echoes those secrets back in every field ACR's
error body has. The CLI (`plan`, `apply`, Basic credentials from ACR_USERNAME/ACR_PASSWORD) and
the function app (a fake AAD credential) then run on it, on the happy path and on the error
paths: a wrong password (401), a scope map without delete (insufficient_scope), a principal with
no role, tokens revoked mid-run, and echoed 5xx on reads and on deletes. Everything captured is
searched for every secret; records from the emulator's own loggers (the registry side) are not.
"""

from __future__ import annotations

import base64
import json
import logging
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

import azure.functions as func
import pytest
from azure.core.credentials import AccessToken

import function_app
from acr_core.app.handlers import RetryableRun
from acr_core.cli import main
from acr_core.registry.transport import RetryPolicy
from acr_emulator import Emulator, EmulatorConfig, ServerInfo
from acr_emulator.http import Receive, Scope, Send
from acr_emulator.server import serve_in_thread
from acr_emulator.testing import AsyncFakeCredential

POLICY = {
    "version": 1,
    "rules": [{"name": "apps", "repositories": ["apps/**"], "keepLatest": 1, "minAge": "1h"}],
}
SCOPED_USER, SCOPED_PASSWORD = "reader", "scoped-Pa55word-that-must-not-leak"
# Loggers of the registry side, whose records are not the cleaner's to keep clean.
REGISTRY_SIDE = ("uvicorn", "acr_emulator")


@dataclass
class Recorder:
    """The emulator's ASGI app, with every secret on the wire written down."""

    app: Any
    secrets: set[str] = field(default_factory=set)
    echo: Callable[[str, str], bool] = lambda method, path: False
    every: int = 0  # call `hook` every this many requests
    hook: Callable[[], None] | None = None
    seen: int = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.seen += 1
        if self.hook is not None and self.every and self.seen % self.every == 0:
            self.hook()
        body = await _read(receive)
        self._note_request(scope, body)
        if self.echo(scope["method"], scope["path"]):
            await self._echo(scope, body, send)
            return

        async def replay() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        chunks: list[bytes] = []

        async def keep(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        await self.app(scope, replay, keep)
        self._note_tokens(b"".join(chunks))

    def _note_request(self, scope: Scope, body: bytes) -> None:
        for name, value in scope["headers"]:
            if name.lower() == b"authorization":
                kind, _, credential = value.decode("latin-1").partition(" ")
                self.secrets.add(credential)
                if kind.lower() == "basic":
                    user_password = base64.b64decode(credential).decode()
                    self.secrets.add(user_password)
                    self.secrets.add(user_password.partition(":")[2])
        form = parse_qs(body.decode("utf-8", "replace"))
        for key in ("access_token", "refresh_token", "password"):
            self.secrets.update(form.get(key, []))

    def _note_tokens(self, body: bytes) -> None:
        try:
            data = json.loads(body)
        except ValueError:
            return
        if isinstance(data, dict):
            for key in ("access_token", "refresh_token", "token"):
                if isinstance(data.get(key), str):
                    self.secrets.add(data[key])

    async def _echo(self, scope: Scope, body: bytes, send: Send) -> None:
        """A 503 that quotes the request's credentials in every field a client might show."""
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        auth = headers.get("authorization", "")
        raw = auth.partition(" ")[2]
        said = f"Authorization: {auth}; token {raw}; body {body.decode('utf-8', 'replace')}"
        error = {"code": f"UNAVAILABLE {raw}", "message": said, "detail": headers}
        content = json.dumps({"errors": [error]}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 503,
                # Retry at once: the CLI's own retry policy (6 attempts) runs, without waiting.
                "headers": [(b"content-type", b"application/json"), (b"retry-after", b"0")],
            }
        )
        await send({"type": "http.response.body", "body": content})


async def _read(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


class Capture(logging.Handler):
    """Every record of every logger, formatted with its traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if not record.name.startswith(REGISTRY_SIDE):
            self.texts.append(self.format(record))


@dataclass
class Served:
    emulator: Emulator
    recorder: Recorder
    server: ServerInfo


@pytest.fixture
def served() -> Iterator[Served]:
    emulator = Emulator(EmulatorConfig())
    now = datetime.now(UTC)
    emulator.seed(
        {
            "repositories": [
                {
                    "name": name,
                    "manifests": [
                        {
                            "id": f"{name}-{i}",
                            "tags": [f"v{i}"],
                            "pushed": (now - timedelta(days=10 - i)).isoformat(),
                        }
                        for i in range(4)
                    ],
                }
                for name in ("apps/web", "apps/api")
            ]
        }
    )
    emulator.add_scoped_token(
        SCOPED_USER,
        SCOPED_PASSWORD,
        [f"repositories/{n}/{a}" for n in ("apps/web", "apps/api") for a in ("content/read",)]
        + ["repositories/apps/web/metadata/read", "repositories/apps/api/metadata/read"],
    )
    recorder = Recorder(emulator.app)
    login = (emulator.config.admin_username, emulator.admin_password)
    with serve_in_thread(recorder, login) as server:
        yield Served(emulator, recorder, server)


@pytest.fixture
def captured() -> Iterator[Capture]:
    """Root and every library logger at DEBUG, all of it kept."""
    capture = Capture()
    root = logging.getLogger()
    names = ["httpx", "httpcore", "azure", "acr_cleanup", "acr_core", "asyncio", "hpack"]
    names += [
        n for n, v in logging.root.manager.loggerDict.items() if isinstance(v, logging.Logger)
    ]
    loggers = [logging.getLogger(n) for n in sorted(set(names))]
    saved = [(lg, lg.level, lg.disabled) for lg in [root, *loggers]]
    root.addHandler(capture)
    for logger, _, _ in saved:
        logger.setLevel(logging.DEBUG)
        logger.disabled = False
        if not logger.propagate:
            logger.addHandler(capture)
    yield capture
    for logger, level, disabled in saved:
        logger.setLevel(level)
        logger.disabled = disabled
        logger.removeHandler(capture)


def leaks(served: Served, *texts: str) -> list[str]:
    """Each secret the wire carried that shows up in `texts`, shortened for the failure."""
    secrets = set(served.recorder.secrets)
    # A JWT's signature is what makes it a credential; it must not appear on its own either.
    secrets |= {s.rsplit(".", 1)[-1] for s in list(secrets) if s.count(".") == 2}
    secrets = {s for s in secrets if len(s) >= 12}
    assert secrets, "the run sent no credential at all"
    everything = "\n".join(texts)
    return [secret[:12] + "..." for secret in sorted(secrets) if secret in everything]


def cli(served: Served, *args: str, user: str | None = None, password: str | None = None) -> int:
    server = served.server
    argv = [*args, "--registry", server.login_server, "--ca-file", str(server.ca_file)]
    environ = {
        "ACR_USERNAME": user or server.admin_username,
        "ACR_PASSWORD": password or server.admin_password,
    }
    return main(argv, environ=environ)


def write_policy(tmp_path: Any) -> str:
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(POLICY))
    return str(path)


def _reads_of_web(method: str, path: str) -> bool:
    return method == "GET" and path.startswith("/acr/v1/apps/web/_manifests")


def _deletes(method: str, path: str) -> bool:
    return method == "DELETE"


CLI_CASES: dict[str, tuple[tuple[str, ...], dict[str, str], Callable[[str, str], bool] | None]] = {
    "plan": (("plan", "--output", "json"), {}, None),
    "plan as a table": (("plan",), {}, None),
    "apply": (("apply", "--yes"), {}, None),
    "a wrong password (401)": (("plan",), {"password": "not-the-Pa55word-at-all"}, None),
    "a scope map without delete": (
        ("apply", "--yes"),
        {"user": SCOPED_USER, "password": SCOPED_PASSWORD},
        None,
    ),
    "a 5xx echoing credentials on reads": (("plan", "--output", "json"), {}, _reads_of_web),
    "a 5xx echoing credentials on deletes": (("apply", "--yes"), {}, _deletes),
}


@pytest.mark.parametrize("case", list(CLI_CASES))
def test_the_cli_never_shows_a_credential(case, served, captured, tmp_path, capsys):
    """plan and apply with Basic credentials, happy or failing, print and log no secret."""
    args, login, echo = CLI_CASES[case]
    if echo is not None:
        served.recorder.echo = echo
    if login.get("password", "").startswith("not-"):
        served.recorder.secrets.add(login["password"])
    if "user" in login:
        served.recorder.secrets.add(login["password"])

    code = cli(served, *args, "--policy", write_policy(tmp_path), **login)

    out, err = capsys.readouterr()
    assert code in (0, 1, 3), out + err
    assert not leaks(served, out, err, *captured.texts), case


class RecordingCredential:
    """The fake managed identity, writing down each AAD token it hands out."""

    def __init__(self, served: Served) -> None:
        self._inner = AsyncFakeCredential()
        self._served = served

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        token = await self._inner.get_token(*scopes, **kwargs)
        self._served.recorder.secrets.add(token.token)
        return token

    async def close(self) -> None:
        return None


def configure(served: Served) -> None:
    env = {
        "ACR_LOGIN_SERVER": served.server.login_server,
        "ACR_RESOURCE_ID": served.emulator.config.resource_id,
        "CLEANUP_POLICY": json.dumps(POLICY),
        "CLEANUP_DRY_RUN": "false",
    }
    function_app.configure(
        env,
        credential=RecordingCredential(served),  # type: ignore[arg-type]
        verify=ssl.create_default_context(cafile=served.server.ca_file),
        retry=RetryPolicy(attempts=2, deadline=5.0, backoff_base=0.01, backoff_max=0.05),
    )


def pushed_event(served: Served, repository: str, tag: str) -> func.EventGridEvent:
    digest = served.emulator.registry.repositories[repository].tags[tag].digest
    return func.EventGridEvent(
        id="evt-1",
        data={
            "action": "push",
            "target": {"repository": repository, "digest": digest, "tag": tag},
            "request": {"host": served.server.login_server},
        },
        topic=served.emulator.config.resource_id,
        subject=f"{repository}:{tag}",
        event_type="Microsoft.ContainerRegistry.ImagePushed",
        event_time=None,
        data_version="1.0",
    )


def _no_role(served: Served) -> None:
    served.emulator.revoke(AsyncFakeCredential().oid)


def _revoking(served: Served) -> None:
    served.recorder.every, served.recorder.hook = 3, served.emulator.revoke_tokens


def _echo_deletes(served: Served) -> None:
    served.recorder.echo = _deletes


def _echo_reads(served: Served) -> None:
    served.recorder.echo = _reads_of_web


FUNCTION_CASES: dict[str, Callable[[Served], None]] = {
    "a push that cleans": lambda served: None,
    "a principal with no role": _no_role,
    "tokens revoked mid-run": _revoking,
    "a 5xx echoing credentials on reads": _echo_reads,
    "a 5xx echoing credentials on deletes": _echo_deletes,
}


@pytest.mark.parametrize("case", list(FUNCTION_CASES))
async def test_the_function_never_logs_a_credential(case, served, captured):
    """A push event's run with the managed identity, happy or failing, logs no secret."""
    saved = function_app._shell
    try:
        configure(served)
        FUNCTION_CASES[case](served)
        try:
            await function_app.on_image_pushed(pushed_event(served, "apps/web", "v3"))
        except RetryableRun as exc:
            captured.texts.append(str(exc))
    finally:
        function_app._shell = saved
    assert not leaks(served, *captured.texts), case

"""`acr-cleanup plan|apply|validate|diff|migrate|ledger|restore`: the cleanup from a terminal.

Everything the command line and the environment say is read and checked here, once, into an
`Options`; a mistake prints one line naming the flag and what to do, and exits 2 before any
request is sent. Usage, the JSON schema of `--output json` and the exit codes: docs/cli.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import math
import os
import signal
import ssl
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TextIO, TypeVar
from urllib.parse import urlsplit

from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import ClientAuthenticationError

from acr_core.history.store import FileHistory, HistoryStore, TableHistory, user_history_path
from acr_core.ledger import commands as ledger_commands
from acr_core.ledger.ledger import LedgerError
from acr_core.ledger.recorder import LedgerRecorder
from acr_core.names import is_repository_name
from acr_core.planning.lint import lint
from acr_core.planning.migrate import migrate_text
from acr_core.planning.plan import ActionKind
from acr_core.planning.policy import Policy, PolicyError, load_policy
from acr_core.registry.client import AcrClient
from acr_core.registry.endpoint import EndpointError, parse_endpoint
from acr_core.registry.errors import (
    UNTRUSTED_ADVICE,
    AcrConnectionError,
    AcrError,
    AuthenticationError,
    PermissionDeniedError,
)
from acr_core.registry.transport import RetryPolicy
from acr_core.run.coverage import read_coverage, render_coverage, validation_report
from acr_core.run.diff import PolicyDiff, diff_json, diff_policies
from acr_core.run.diff_report import render_diff_markdown, render_diff_table
from acr_core.run.executor import Outcome
from acr_core.run.gathering import Reading
from acr_core.run.limiter import DEFAULT_MAX_CONCURRENCY, SAFETY_MARGIN, SKUS, ExecutionLimits
from acr_core.run.manifest_cache import DEFAULT_MEMORY_BYTES, ManifestCache, default_cache_dir
from acr_core.run.progress import ProgressLine
from acr_core.run.report import RunReport, Status, render_markdown, render_table
from acr_core.run.service import RepositoryNotFoundError, RunInterrupted, run_cleanup
from acr_core.storage.objects import DirectoryStore, MemoryStore, ObjectStore
from acr_core.storage.tables import TableError, TableStore, check_table_url

EXIT_DONE = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_BLOCKED = 3
EXIT_NOTHING_COVERED = 4
EXIT_INTERRUPTED = 130
T = TypeVar("T")

# Seconds to wait for a TCP (and TLS) connection: a registry on the internet answers within
# one or two; a wrong port or a host that drops packets should not take the default 30 s.
CONNECT_TIMEOUT = 5.0

_EXIT_FOR_STATUS = {Status.DONE: EXIT_DONE, Status.BLOCKED: EXIT_BLOCKED}
# The OCI distribution spec's repository name grammar (path components separated by `/`).


class UsageError(Exception):
    """The command line or the environment is unusable; the message says which flag and why."""


@dataclass(frozen=True, slots=True)
class Options:
    command: str
    endpoint: str
    policy: Policy
    repositories: tuple[str, ...] | None
    output: str
    show_kept: bool
    now: datetime | None
    verify: ssl.SSLContext | bool
    username: str | None
    anonymous: bool
    yes: bool
    limits: ExecutionLimits
    password: str | None = field(default=None, repr=False)
    against: Policy | None = None  # diff: the current policy
    ledger: str = ""  # --ledger: a directory, or a blob container's URL
    history: Path | str | None = None  # --history: the tag history's file, or table URL
    cache_dir: Path | None = None  # None: --no-cache


# The published documentation: docs/ in this repository (pyproject.toml's Documentation URL),
# since an installed package has no docs/ folder to point at.
DOCS = "https://github.com/acr-cleanup/acr-cleanup/blob/main/docs"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="acr-cleanup",
        description="Delete old images from Azure Container Registry by policy, and lock tags.",
        epilog="Exit codes: 0 done, 1 failed, 2 usage or policy error, 3 blocked by a safety "
        "limit, 4 no rule governs any repository, 130 interrupted.\n"
        f"Documentation: {DOCS}/cli.md",
        formatter_class=argparse.RawDescriptionHelpFormatter,  # keeps the link on one line
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    plan = _command(commands, "plan", "show what the policy would delete and lock")
    apply = _command(commands, "apply", "delete and lock what the policy says")
    for sub in (plan, apply):
        _registry_arguments(sub)
        _ledger_argument(sub)
    apply.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    _ledger_commands(commands)
    validate = _command(commands, "validate", "check a policy file and list every error")
    validate.add_argument("policy_file", nargs="?", metavar="FILE", help="the policy file")
    validate.add_argument("--policy", dest="policy_flag", metavar="FILE", help="the policy file")
    _validate_arguments(validate)
    _diff_arguments(_command(commands, "diff", "show what a new policy would change in a plan"))
    migrate = _command(commands, "migrate", "print the version 2 form of a version 1 policy")
    migrate.add_argument("policy_file", metavar="FILE", help="the version 1 policy file")
    return parser


# Each command's `--help`: what it does, and an example to start from.
_ABOUT = {
    "plan": (
        "Read the registry and print what the policy would delete, lock and keep, and why. "
        "Changes nothing.",
        "acr-cleanup plan --registry myregistry.azurecr.io --policy policy.json\n"
        "  acr-cleanup plan --registry myregistry.azurecr.io --policy policy.json "
        "--repository services/api --output json",
    ),
    "apply": (
        "Plan as `plan` does, then delete and lock it. On a terminal it shows a preview and "
        "asks [y/N]; elsewhere it needs --yes.",
        "acr-cleanup apply --registry myregistry.azurecr.io --policy policy.json\n"
        "  acr-cleanup apply --registry myregistry.azurecr.io --policy policy.json --yes "
        "--output json",
    ),
    "diff": (
        "Read the registry once, plan both policies on what was read, and print what the "
        "policy would newly delete and newly keep compared with --against, with sizes and "
        "reasons. Changes nothing.",
        "acr-cleanup diff --registry myregistry.azurecr.io --policy new.json --against "
        "policy.json\n"
        "  acr-cleanup diff --registry myregistry.azurecr.io --policy new.json --against "
        'policy.json --output markdown >> "$GITHUB_STEP_SUMMARY"',
    ),
    "migrate": (
        "Print the version 2 form of a version 1 policy on stdout: the same rules, so it "
        "plans the same. The file itself is not changed.",
        "acr-cleanup migrate policy.json > policy.v2.json",
    ),
    "validate": (
        "Check a policy file and print every problem, one per line; warn on stderr about what "
        "is valid but probably wrong. With --registry, also list which rule governs each "
        "repository (reads only the catalog).",
        "acr-cleanup validate policy.json\n"
        "  acr-cleanup validate policy.json --registry myregistry.azurecr.io",
    ),
    "ledger": (
        "List or show what runs deleted and locked, from the deletion ledger. Changes nothing.",
        "acr-cleanup ledger list --repository services/api --since 7d\n"
        "  acr-cleanup ledger show sha256:4f2c...",
    ),
    "restore": (
        "Put manifests a run deleted back from the ledger, with their tags, and protect them "
        "from age-based deletion for a while.",
        "acr-cleanup restore --registry myregistry.azurecr.io --run 20260131T030000Z-1a2b3c4d "
        "--dry-run",
    ),
}


def _command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], name: str, summary: str
) -> argparse.ArgumentParser:
    description, example = _ABOUT[name]
    return commands.add_parser(
        name,
        help=summary,
        description=description,
        epilog=f"example:\n  {example}\n\nDocumentation: {DOCS}/cli.md",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def _ledger_argument(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--ledger",
        metavar="DIR|URL",
        help="the deletion ledger: a directory, or https://<account>.blob.core.windows.net/"
        "<container> (default: acr-cleanup/ledger in the user's data directory)",
    )


def _ledger_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ledger = _command(commands, "ledger", "list or show the deletion ledger's entries")
    actions = ledger.add_subparsers(dest="ledger_command", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="the entries that match, as a table or JSON")
    show = actions.add_parser("show", help="every entry of a run or of a digest, in full")
    show.add_argument("what", metavar="RUN|DIGEST", help="a run id, or a sha256: digest")
    restore = _command(commands, "restore", "put deleted manifests back from the ledger")
    restore.add_argument("--registry", required=True, help="login server or https URL")
    restore.add_argument("--dry-run", action="store_true", help="say what would be restored")
    restore.add_argument(
        "--protect-for",
        default="7d",
        metavar="DURATION",
        help="keep restored manifests from age-based deletion this long (default 7d)",
    )
    restore.add_argument("--ca-file", metavar="FILE", help="trust this CA bundle (PEM)")
    restore.add_argument("--username", help="admin user or token name (or ACR_USERNAME)")
    restore.add_argument("--password", help="its password (better: the ACR_PASSWORD variable)")
    for sub in (listing, show, restore):
        _ledger_argument(sub)
    for sub in (listing, restore):
        sub.add_argument("--repository", metavar="NAME", help="only this repository")
        sub.add_argument("--digest", metavar="DIGEST", help="only entries of this digest")
        sub.add_argument("--run", metavar="ID", help="only this run")
        sub.add_argument("--since", metavar="TIME", help="ISO 8601 time, or a duration ago (7d)")
        sub.add_argument("--output", choices=("table", "json"), default="table")
    listing.add_argument("--until", metavar="TIME", help="ISO 8601 time, or a duration ago")
    listing.add_argument("--rule", metavar="NAME", help="only entries of this policy rule")


def _version() -> str:
    try:
        return metadata.version("acr-cleanup")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def _registry_arguments(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--registry", required=True, help="login server or https URL")
    sub.add_argument("--policy", required=True, metavar="FILE", help="policy JSON file")
    sub.add_argument(
        "--repository",
        action="append",
        metavar="NAME",
        help="only this repository (repeatable; default: every repository the policy covers)",
    )
    sub.add_argument(
        "--output",
        choices=("table", "json", "markdown"),
        default="table",
        help="a table for people (default), the JSON report (cli.md: see acr-cleanup --help), "
        "or markdown for a CI job summary or a pull-request comment",
    )
    sub.add_argument(
        "--show",
        action="append",
        choices=("kept",),
        default=[],
        help="kept: also list every manifest kept, and why (default: deletions and locks only)",
    )
    sub.add_argument("--verbose", "-v", action="store_true", help="the same as --show kept")
    sub.add_argument("--now", metavar="ISO8601", help="plan as of this time (with a time zone)")
    cache = sub.add_argument_group("manifest cache (raw manifests by digest, verified)")
    cache.add_argument("--cache-dir", metavar="DIR", help="keep it here (default: user cache dir)")
    cache.add_argument("--no-cache", action="store_true", help="read every manifest from ACR")
    _connection_arguments(sub)


def _connection_arguments(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--ca-file", metavar="FILE", help="trust this CA bundle (PEM)")
    sub.add_argument(
        "--history",
        metavar="PATH",
        help="the moving-tag history that previousDigests reads and each run adds to: a file "
        "(default: acr-cleanup/history.json in your user data directory) or the function's "
        "table, https://<account>.table.core.windows.net/<table>",
    )
    auth = sub.add_argument_group("authentication (default: DefaultAzureCredential)")
    auth.add_argument("--username", help="admin user or token name (or ACR_USERNAME)")
    auth.add_argument("--password", help="its password (better: the ACR_PASSWORD variable)")
    auth.add_argument("--anonymous", action="store_true", help="no credentials (plan only)")
    limits = sub.add_argument_group("pace")
    limits.add_argument(
        "--max-concurrency",
        type=int,
        default=DEFAULT_MAX_CONCURRENCY,
        metavar="N",
        help=f"concurrent requests at most (default {DEFAULT_MAX_CONCURRENCY}, as acr purge)",
    )
    _pace_flags(limits)


def _pace_flags(group: argparse._ArgumentGroup) -> None:
    """ACR's 2026 request-rate limits per identity (docs/acr-facts.md section 4.1); the run
    paces each category at SAFETY_MARGIN of its limit (docs/cli.md, "Pace")."""
    group.add_argument(
        "--sku",
        choices=SKUS,
        help="the registry's SKU: pace below its per-identity limits (basic/standard: 500 "
        "deletes, 5,000 reads, 1,000 writes a minute; premium: 2,000, 10,000, 2,000). "
        "Default: no fixed pace, slow down on 429s only",
    )
    for flag, category, what in (
        ("--deletes-per-minute", "DataplaneDelete", "manifest DELETEs"),
        ("--reads-per-minute", "DataplaneRead", "listings and reads, re-checks included"),
        ("--writes-per-minute", "DataplaneWrite", "tag locks"),
    ):
        group.add_argument(
            flag,
            type=float,
            metavar="N",
            help=f"the {category} limit this identity has ({what}); overrides --sku's; "
            f"the run paces at {SAFETY_MARGIN * 100:.0f}%% of it",
        )


def main(
    argv: Sequence[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    credential: AsyncTokenCredential | None = None,
) -> int:
    """Run the command line; returns the exit code.

    `environ` replaces `os.environ`; `credential` replaces `DefaultAzureCredential` (tests).
    """
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse has printed the usage error or the help
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if args.command == "validate":
        return _validate(args, os.environ if environ is None else environ, credential)
    if args.command == "migrate":
        return _migrate(args.policy_file)
    env = os.environ if environ is None else environ
    if args.command in ("ledger", "restore"):
        return _ledger_main(args, env, credential)
    try:
        options = _options(args, os.environ if environ is None else environ)
        if options.command == "apply" and not options.yes and not sys.stdin.isatty():
            raise UsageError("apply changes the registry: pass --yes when stdin is not a terminal")
    except PolicyError as exc:
        return _policy_errors(getattr(exc, "path", args.policy), exc, sys.stderr)
    except UsageError as exc:
        _error(str(exc))
        return EXIT_USAGE
    if options.command == "diff":
        return _diff(options, credential, (args.policy, args.against))
    try:
        return asyncio.run(_run(options, credential))
    except KeyboardInterrupt:
        _error("interrupted; what was done is done, and the next run picks up the rest")
        return EXIT_INTERRUPTED


def parse_options(argv: Sequence[str], environ: Mapping[str, str]) -> Options:
    """The options of `plan`/`apply` as `main` reads them; raises `UsageError`/`PolicyError`."""
    return _options(build_parser().parse_args(argv), environ)


def _options(args: argparse.Namespace, environ: Mapping[str, str]) -> Options:
    username = args.username or environ.get("ACR_USERNAME") or None
    password = args.password or environ.get("ACR_PASSWORD") or None
    if args.anonymous and (args.username or args.password):
        raise UsageError("--anonymous cannot be combined with --username/--password")
    if args.anonymous:
        username = password = None
        if args.command == "apply":
            raise UsageError("apply needs credentials: drop --anonymous, or use plan")
    if (username is None) != (password is None):
        raise UsageError("--username and --password (or ACR_USERNAME and ACR_PASSWORD) go together")
    limits = _limits(args)
    for name in args.repository or ():
        if not is_repository_name(name):
            raise UsageError(
                f"--repository {name!r} is not a repository name: lower-case letters, digits "
                "and . _ - separators, with / between path components"
            )
    endpoint = _endpoint(args.registry)
    policy = load_policy(_read(args.policy, "--policy"))
    return Options(
        command=args.command,
        endpoint=endpoint,
        policy=policy,
        repositories=tuple(args.repository) if args.repository else None,
        output=args.output,
        show_kept=args.verbose or "kept" in args.show,
        now=_parse_now(args.now, args.command) if args.now else None,
        verify=_verify(args.ca_file) if args.ca_file else True,
        username=username,
        password=password,
        anonymous=args.anonymous,
        yes=getattr(args, "yes", False),
        limits=limits,
        against=_against(args.against) if getattr(args, "against", None) else None,
        ledger=getattr(args, "ledger", None) or _default_ledger(environ),
        history=_history_path(getattr(args, "history", None), policy, environ),
        cache_dir=_cache_dir(args, environ),
    )


def _history_path(
    given: str | None, policy: Policy, environ: Mapping[str, str]
) -> Path | str | None:
    """`--history` (a table URL, or a file), else the default file when a rule keeps
    previousDigests (a policy without the clause leaves no file behind)."""
    if given and given.startswith(("https://", "http://")):
        try:
            url = check_table_url(given)
        except TableError as exc:
            raise UsageError(f"--history {exc}") from None
        if not all(_installed(m) for m in ("azure.data.tables", "aiohttp")):
            raise UsageError(
                "--history with a table URL needs azure-data-tables and aiohttp: "
                "pip install azure-data-tables aiohttp (or give a file)"
            )
        return url
    if given:
        return Path(given)
    if not any(rule.previous_digests for rule in policy.rules):
        return None
    return user_history_path(environ, sys.platform, Path.home())


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


def _limits(args: argparse.Namespace) -> ExecutionLimits:
    """The pace flags as limits; a bad number is refused naming its flag."""
    for name in ("deletes_per_minute", "reads_per_minute", "writes_per_minute"):
        value = getattr(args, name)
        if value is not None and not (value > 0 and math.isfinite(value)):
            flag = "--" + name.replace("_", "-")
            raise UsageError(
                f"{flag} {value:g} is not a positive number of requests a minute: give the "
                "registry's limit for this identity, or leave it out (--sku sets all three)"
            )
    if args.max_concurrency < 1:
        raise UsageError(f"--max-concurrency {args.max_concurrency} must be at least 1")
    return ExecutionLimits.for_sku(
        args.sku,
        max_concurrency=args.max_concurrency,
        deletes_per_minute=args.deletes_per_minute,
        reads_per_minute=args.reads_per_minute,
        writes_per_minute=args.writes_per_minute,
    )


def _endpoint(registry: str) -> str:
    """`myregistry.azurecr.io` or `https://host[:port]`; plain http only to loopback."""
    try:
        return parse_endpoint(registry).url
    except EndpointError as exc:
        raise UsageError(f"--registry {registry!r} {exc.problem}") from None


def _parse_now(text: str, command: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--now {text!r} is not ISO 8601, e.g. 2026-01-31T12:00:00Z") from None
    if moment.tzinfo is None:
        # The suggestion is `moment` in UTC as `fromisoformat` reads it back: a bare date
        # gains its time too (Python 3.11 refuses `2030-01-01Z`).
        suggestion = moment.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z")
        raise UsageError(f"--now {text!r} needs a time zone, e.g. {suggestion}")
    if command == "apply" and moment > datetime.now(UTC):
        # Ages are measured back from `now`: a future `now` makes images pushed a moment ago
        # look older than minAge and untagged.olderThan, so apply would delete them.
        raise UsageError(
            f"--now {text!r} is in the future: apply would treat fresh images as old; "
            "give apply a time no later than now, or look ahead with plan"
        )
    return moment


def _verify(ca_file: str) -> ssl.SSLContext:
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"--ca-file {ca_file}: cannot load it as a PEM bundle ({exc})") from None


def _read(path: str, flag: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UsageError(f"{flag} {path}: cannot read it ({reason})") from None


def _validate_arguments(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--registry", help="also list which rule governs each repository (reads the catalog)"
    )
    sub.add_argument(
        "--output", choices=("table", "json"), default="table", help="text (default) or JSON"
    )
    _connection_arguments(sub)
    # What `_options` reads and validate has no flag for.
    sub.set_defaults(policy=None, repository=None, show=[], verbose=False, now=None)


def _validate(
    args: argparse.Namespace, environ: Mapping[str, str], given: AsyncTokenCredential | None
) -> int:
    """Errors on stdout (exit 2); warnings on stderr; with --registry, each repository's rule
    (exit 4 when no rule governs any)."""
    path = args.policy_file or args.policy_flag
    if path is None:
        _error("validate needs a policy file: acr-cleanup validate FILE")
        return EXIT_USAGE
    try:
        policy = load_policy(_read(path, "policy"))
        options = _options(_with_args(args, policy=path), environ) if args.registry else None
    except UsageError as exc:
        _error(str(exc))
        return EXIT_USAGE
    except PolicyError as exc:
        return _policy_errors(path, exc, sys.stdout)
    warnings = lint(policy)
    for warning in warnings:
        sys.stderr.write(f"{path}: warning: {warning}\n")
    coverage = None
    if options is not None:
        try:
            coverage = asyncio.run(_with_client(options, given, read_coverage))
        except (ClientAuthenticationError, AcrError) as exc:
            # A refused catalog says which role lists it; `_explain` would add plan's way
            # around it (--repository), which validate has not.
            _error(str(exc) if isinstance(exc, PermissionDeniedError) else _explain(exc, options))
            return EXIT_FAILED
    if args.output == "json":
        sys.stdout.write(json.dumps(validation_report(path, policy, warnings, coverage), indent=2))
        sys.stdout.write("\n")
    else:
        rules = ", ".join(rule.name for rule in policy.rules)
        sys.stdout.write(f"{path}: valid, {len(policy.rules)} rule(s): {rules}\n")
        sys.stdout.write(render_coverage(coverage) if coverage else "")
    if coverage is not None and options is not None and not coverage.governs_any:
        _error(_nothing_covered(options))
        return EXIT_NOTHING_COVERED
    return EXIT_DONE


def _with_args(args: argparse.Namespace, **changes: object) -> argparse.Namespace:
    return argparse.Namespace(**{**vars(args), **changes})


def _client_for(options: Options, credential: AsyncTokenCredential | None) -> AcrClient:
    """A client signed in as `options` say, failing fast when the registry is unreachable."""
    return AcrClient(
        options.endpoint,
        credential,
        username=options.username,
        password=options.password,
        verify=options.verify,
        retry=RetryPolicy(fail_fast_unreached=True),
        connect_timeout=CONNECT_TIMEOUT,
    )


async def _with_client(
    options: Options,
    given: AsyncTokenCredential | None,
    work: Callable[[AcrClient, Policy], Awaitable[T]],
) -> T:
    """`work(client, policy)` with a client signed in as `options` say; read-only commands."""
    credential = _credential(options, given)
    try:
        async with _client_for(options, credential) as client:
            return await work(client, options.policy)
    finally:
        if credential is not None and credential is not given:
            await credential.close()


def _diff_arguments(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--registry", required=True, help="login server or https URL")
    sub.add_argument("--policy", required=True, metavar="FILE", help="the new policy JSON")
    sub.add_argument(
        "--against", required=True, metavar="FILE", help="the current policy JSON to compare with"
    )
    sub.add_argument(
        "--repository",
        action="append",
        metavar="NAME",
        help="only this repository (repeatable; default: every repository either policy covers)",
    )
    sub.add_argument(
        "--output",
        choices=("table", "json", "markdown"),
        default="table",
        help="a table (default), JSON (cli.md: diff), or markdown for a pull-request comment",
    )
    sub.add_argument("--now", metavar="ISO8601", help="plan as of this time (with a time zone)")
    cache = sub.add_argument_group("manifest cache (raw manifests by digest, verified)")
    cache.add_argument("--cache-dir", metavar="DIR", help="keep it here (default: user cache dir)")
    cache.add_argument("--no-cache", action="store_true", help="read every manifest from ACR")
    _connection_arguments(sub)
    sub.set_defaults(show=[], verbose=False)


class _AgainstError(PolicyError):
    """The --against policy is invalid; `path` names its file in the messages."""

    def __init__(self, path: str, problems: Sequence[str]) -> None:
        super().__init__(problems)
        self.path = path


def _against(path: str) -> Policy:
    try:
        return load_policy(_read(path, "--against"))
    except PolicyError as exc:
        raise _AgainstError(path, exc.problems) from None


def _diff(options: Options, given: AsyncTokenCredential | None, labels: tuple[str, str]) -> int:
    """Plan both policies on one read of the registry and print the difference."""
    assert options.against is not None
    against = options.against

    async def work(client: AcrClient, policy: Policy) -> PolicyDiff:
        line = _progress(sys.stderr)
        with line or contextlib.nullcontext():
            return await diff_policies(
                client,
                policy,
                against,
                labels=labels,
                repositories=options.repositories,
                now=options.now,
                limits=options.limits,
                progress=line,
            )

    try:
        result = asyncio.run(_with_client(options, given, work))
    except RepositoryNotFoundError as exc:
        _error(f"{exc}: check the name (`az acr repository list` lists them) and --registry")
        return EXIT_USAGE
    except (ClientAuthenticationError, AcrError) as exc:
        _error(_explain(exc, options))
        return EXIT_FAILED
    except KeyboardInterrupt:
        _error("interrupted; nothing was changed")
        return EXIT_INTERRUPTED
    renderers = {"json": diff_json, "markdown": render_diff_markdown, "table": render_diff_table}
    sys.stdout.write(renderers[options.output](result))
    failed = [i for i in result.issues if i.status is Status.FAILED]
    if failed:
        cause = failed[0].cause
        detail = _explain(cause, options) if isinstance(cause, AcrError) else failed[0].detail
        many = "y" if len(failed) == 1 else "ies"
        _error(f"{len(failed)} repositor{many} could not be read: {detail}")
        return EXIT_FAILED
    if not result.repositories:
        _error(_nothing_covered(options))
        return EXIT_NOTHING_COVERED
    return EXIT_DONE


def _migrate(path: str) -> int:
    try:
        sys.stdout.write(migrate_text(_read(path, "policy")))
    except UsageError as exc:
        _error(str(exc))
        return EXIT_USAGE
    except PolicyError as exc:
        return _policy_errors(path, exc, sys.stderr)
    return EXIT_DONE


def _policy_errors(path: str, exc: PolicyError, out: TextIO) -> int:
    for problem in exc.problems:
        out.write(f"{path}: {problem}\n")
    out.write(f"{path}: {len(exc.problems)} error(s); see {DOCS}/policy.md\n")
    return EXIT_USAGE


def _error(message: str) -> None:
    sys.stderr.write(f"acr-cleanup: error: {message}\n")


async def _close(
    store: ObjectStore,
    history: HistoryStore | None,
    credentials: Sequence[AsyncTokenCredential | None],
    given: AsyncTokenCredential | None,
) -> None:
    """Close what the run opened: the ledger's store, the history, and each credential once
    (the registry's and the stores' may be one object), except the caller's own."""
    await store.close()
    if history is not None:
        await history.close()
    for owned in {id(c): c for c in credentials if c is not None}.values():
        if owned is not given:
            await owned.close()


async def _run(options: Options, given: AsyncTokenCredential | None) -> int:
    credential = _credential(options, given)
    store_credential = _store_credential(options.ledger, credential, given)
    ledger = ledger_commands.open_ledger(options.ledger, store_credential)
    history = _history(options)
    try:
        async with _client_for(options, credential) as client:
            line = _progress(sys.stderr)
            confirm = None if options.yes else _confirm()
            with line or contextlib.nullcontext():
                report = await run_cleanup(
                    client,
                    options.policy,
                    repositories=options.repositories,
                    dry_run=options.command == "plan",
                    now=options.now,
                    limits=options.limits,
                    progress=line,
                    confirm=line.paused(confirm) if line and confirm else confirm,
                    named_must_exist=True,
                    recorder=LedgerRecorder(ledger, client, options.policy, trigger="cli"),
                    history=history,
                    reading=_reading(options),
                )
    except RunInterrupted as exc:
        _print(exc.report, options, "interrupted; the actions marked applied were done")
        _error("interrupted while applying; run apply again to finish (it re-reads the registry)")
        return EXIT_INTERRUPTED
    except RepositoryNotFoundError as exc:
        _error(f"{exc}: check the name (`az acr repository list` lists them) and --registry")
        return EXIT_USAGE
    except (ClientAuthenticationError, AcrError) as exc:
        _error(_explain(exc, options))
        return EXIT_FAILED
    except LedgerError as exc:
        _error(f"{exc}; pass --ledger DIR|URL to record elsewhere")
        return EXIT_FAILED
    finally:
        await _close(ledger.store, history, (credential, store_credential), given)
    report = _explain_issues(report, options)
    _print(report, options)
    if report.cancelled:
        _error("cancelled; nothing was changed")
        return EXIT_FAILED
    if report.status is Status.FAILED:
        _error(_failure_line(report))
    elif _governs_nothing(report):
        _error(_nothing_covered(options))
        return EXIT_NOTHING_COVERED
    return _EXIT_FOR_STATUS.get(report.status, EXIT_FAILED)


def _cache_dir(args: argparse.Namespace, environ: Mapping[str, str]) -> Path | None:
    """`--cache-dir`, the user's cache directory, or None for `--no-cache` (and for the
    commands that have neither flag)."""
    if getattr(args, "no_cache", True):
        return None
    return Path(args.cache_dir) if args.cache_dir else default_cache_dir(environ)


def _history(options: Options) -> HistoryStore | None:
    """This registry's tag history: the `--history` file, or the function's table through
    `DefaultAzureCredential`, which needs Storage Table Data Contributor on it (every run, a
    `plan` too, records the tags it lists)."""
    registry = urlsplit(options.endpoint).netloc  # the client's login_server
    if options.history is None or isinstance(options.history, Path):
        path = options.history
        return None if path is None else FileHistory(path, registry=registry)
    from azure.identity.aio import DefaultAzureCredential

    rows = TableStore(options.history, DefaultAzureCredential(), close_credential=True)
    return TableHistory(rows, registry=registry)


def _reading(options: Options) -> Reading:
    """Raw manifests from memory and the cache directory, which a corrupt or unusable cache
    only costs a warning (acr_core.run.manifest_cache); every listing is read in full."""
    if options.cache_dir is None:
        return Reading()
    layers: list[ObjectStore] = [
        MemoryStore(DEFAULT_MEMORY_BYTES),
        DirectoryStore(options.cache_dir),
    ]
    return Reading(cache=ManifestCache(layers))


def render(report: RunReport, options: Options) -> str:
    """The report as `--output` and `--show` ask."""
    if options.output == "json":
        return report.to_json() + "\n"
    if options.output == "markdown":
        return render_markdown(report, show_kept=options.show_kept)
    return render_table(report, show_kept=options.show_kept)


def _print(report: RunReport, options: Options, mode: str | None = None) -> None:
    """The report on stdout as `--output` says; `mode` retitles the table."""
    text = render(report, options)
    sys.stdout.write(_retitled(text, mode) if mode and options.output == "table" else text)
    sys.stdout.flush()


def _governs_nothing(report: RunReport) -> bool:
    """No rule governed any repository: nothing was read, or only names no rule covers."""
    return not report.plan.repositories and all(
        issue.status is Status.NOT_COVERED for issue in report.issues
    )


def _nothing_covered(options: Options) -> str:
    rules = "; ".join(
        f"{rule.name} ({', '.join(rule.repositories.patterns)})" for rule in options.policy.rules
    )
    where = (
        "the repositories named with --repository"
        if options.repositories
        else f"any repository in {options.endpoint}"
    )
    return (
        f"no rule governs {where}: the policy's rules {rules} match none of them. Check the "
        "rules' `repositories` patterns against the registry's names (`az acr repository "
        "list`) and that --registry is the registry you meant"
    )


def _credential(
    options: Options, given: AsyncTokenCredential | None
) -> AsyncTokenCredential | None:
    """`given` (tests) stands in for the Azure AD credential `credential_for` would build."""
    if given is not None and _uses_azure_ad(options):
        return given
    return credential_for(options)


def credential_for(options: Options) -> AsyncTokenCredential | None:
    """The credential `plan`/`apply` sign in with: none for Basic or --anonymous, else a
    `DefaultAzureCredential` (building it sends nothing; it asks for tokens on first use)."""
    if not _uses_azure_ad(options):
        return None
    from azure.identity.aio import DefaultAzureCredential

    return DefaultAzureCredential()


def _default_ledger(environ: Mapping[str, str]) -> str:
    """The user's data directory's ledger; a replaced `environ` (tests) may move it, and
    otherwise it is the real environment's."""
    return str(ledger_commands.default_ledger_dir({**os.environ, **environ}))


def _store_credential(
    ledger: str, credential: AsyncTokenCredential | None, given: AsyncTokenCredential | None
) -> AsyncTokenCredential | None:
    """The Azure AD credential a blob ledger is written with (the registry's, if it has one:
    a Basic sign-in to the registry still needs Azure AD for the storage account)."""
    if not ledger_commands.is_blob_url(ledger):
        return None
    if credential is not None or given is not None:
        return credential or given
    from azure.identity.aio import DefaultAzureCredential

    return DefaultAzureCredential()


def _ledger_main(
    args: argparse.Namespace, environ: Mapping[str, str], given: AsyncTokenCredential | None
) -> int:
    """`ledger` and `restore`: options read here, the work in acr_core.ledger.commands."""
    value = args.ledger or _default_ledger(environ)
    try:
        command = ledger_commands.read_command(args, datetime.now(UTC))
        endpoint = _endpoint(args.registry) if args.command == "restore" else None
        verify = _verify(args.ca_file) if endpoint and args.ca_file else True
    except (UsageError, ledger_commands.LedgerUsageError) as exc:
        _error(str(exc))
        return EXIT_USAGE
    username = getattr(args, "username", None) or environ.get("ACR_USERNAME") or None
    password = getattr(args, "password", None) or environ.get("ACR_PASSWORD") or None

    async def work() -> int:
        credential = given
        if endpoint is not None and username is None and given is None:
            from azure.identity.aio import DefaultAzureCredential

            credential = DefaultAzureCredential()
        store_credential = _store_credential(value, credential, given)
        ledger = ledger_commands.open_ledger(value, store_credential)
        try:
            if endpoint is None:
                return await ledger_commands.run(command, ledger, None, sys.stdout)
            async with AcrClient(
                endpoint,
                None if username else credential,
                username=username,
                password=password,
                verify=verify,
                connect_timeout=CONNECT_TIMEOUT,
            ) as client:
                return await ledger_commands.run(command, ledger, client, sys.stdout)
        finally:
            await ledger.store.close()
            for owned in {id(c): c for c in (credential, store_credential) if c}.values():
                if owned is not given:
                    await owned.close()

    try:
        return asyncio.run(work())
    except LedgerError as exc:
        _error(str(exc))
    except (ClientAuthenticationError, AcrError) as exc:
        _error(str(exc))
    return EXIT_FAILED


def _uses_azure_ad(options: Options) -> bool:
    return not options.anonymous and options.username is None


def _explain(exc: ClientAuthenticationError | AcrError, options: Options) -> str:
    """One line: what went wrong, and what to do about it."""
    if isinstance(exc, ClientAuthenticationError):
        text = str(exc).strip()
        first = text.splitlines()[0] if text else type(exc).__name__
        return (
            f"no Azure AD token for the registry ({first}). Sign in with `az login`, use a "
            "managed identity, or pass --username/--password (ACR_USERNAME/ACR_PASSWORD)"
        )
    if isinstance(exc, AuthenticationError):
        exc = AuthenticationError(
            status=exc.status,
            code=exc.code,
            message=exc.message,
            method=exc.method,
            url=exc.url,
            hint=_sign_in_hint(options) or exc.hint,
            correlation_id=exc.correlation_id,
        )
    hint = ""
    text = str(exc).replace(UNTRUSTED_ADVICE, "")
    if "CERTIFICATE_VERIFY_FAILED" in text:
        hint = (
            "; the registry's certificate is not trusted: check that --registry is the registry "
            "you meant, or, if its certificate comes from a private CA (the emulator prints "
            "its ca_file), pass --ca-file FILE"
        )
    elif isinstance(exc, AcrConnectionError) and "Connect" in str(exc):
        hint = (
            f". Nothing answered at {options.endpoint}: check the registry URL and its port "
            "(--registry), that the registry or the emulator (python -m acr_emulator) is "
            "running, and the network or proxy in between"
        )
    if isinstance(exc, PermissionDeniedError) and (exc.scope or "").startswith("registry:"):
        hint = ". To skip the catalog, name the repositories: --repository NAME"
    return f"{text}{hint}"


def _explain_issues(report: RunReport, options: Options) -> RunReport:
    """The report with each repository the registry refused to sign in to explained for the
    way the CLI signed in, and each one it could not connect to with what to check
    (`_explain`)."""
    explained = AuthenticationError | AcrConnectionError
    if not any(isinstance(i.cause, explained) for i in report.issues):
        return report
    issues = tuple(
        replace(issue, detail=_explain(issue.cause, options))
        if isinstance(issue.cause, explained)
        else issue
        for issue in report.issues
    )
    return replace(report, issues=issues)


def _sign_in_hint(options: Options) -> str | None:
    """What to check when the registry refuses the sign-in, for the way the CLI signed in
    (None: Azure AD, whose hint the error already carries)."""
    if options.anonymous:
        return (
            "The registry refused anonymous access: it may not allow anonymous pull "
            "(`az acr update --anonymous-pull-enabled true`, Standard and Premium only), or "
            "this needs credentials: drop --anonymous to sign in with Azure AD, or pass "
            "--username/--password"
        )
    if options.username is not None:
        return (
            "Check --username/--password (ACR_USERNAME/ACR_PASSWORD): the admin user must be "
            "enabled, or the token and its password must exist and not have expired"
        )
    return None


def _failure_line(report: RunReport) -> str:
    """One line for the log of a failed run, whatever `--output` is: how many failed, and the
    first reason for each kind of failure (reading, deleting, locking)."""
    unread = [i for i in report.issues if i.status is Status.FAILED]
    failed = [
        result
        for repository in report.plan.repositories
        for result in report.results(repository)
        if result.outcome is Outcome.FAILED
    ]
    reasons: dict[str, str] = {}
    if unread:
        reasons["reading"] = unread[0].detail
    for result in failed:
        verb = "deleting" if result.action.kind is ActionKind.DELETE_MANIFEST else "locking"
        reasons.setdefault(verb, result.detail)
    counts = (
        f"{len(unread)} repositor{'y' if len(unread) == 1 else 'ies'} could not be read and "
        f"{len(failed)} action(s) failed"
    )
    return "; ".join([counts, *(f"{verb}: {reason}" for verb, reason in reasons.items())])


def _confirm() -> Callable[[RunReport], Awaitable[bool]]:
    """Show the preview on stderr and ask on the terminal before anything is changed."""

    async def ask(preview: RunReport) -> bool:
        plan = preview.plan
        deletions = sum(len(r.deletions) for r in plan.repositories if not r.blocked)
        locks = sum(len(r.locks) for r in plan.repositories)
        # Read on the loop's own thread (nothing else runs between plan and apply) with
        # Python's own Ctrl-C handling: asyncio's handler would only cancel the task, and the
        # blocked read would wait for Enter. Installed before the prompt is shown, so a Ctrl-C
        # typed the moment the question appears is not lost.
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            table = render_table(preview, show_kept=False)
            sys.stderr.write(_retitled(table, "preview of what apply will do, nothing changed yet"))
            sys.stderr.write(
                f"Delete {deletions} manifest(s) and lock {locks} tag(s) in "
                f"{preview.registry}? [y/N] "
            )
            sys.stderr.flush()
            return sys.stdin.readline().strip().lower() in ("y", "yes")
        finally:
            signal.signal(signal.SIGINT, previous)

    return ask


def _progress(stream: TextIO) -> ProgressLine | None:
    """A progress line on a terminal, redrawn at least once a second while entered; nothing
    when stderr is a file or a pipe."""
    return ProgressLine(stream) if stream.isatty() else None


def _retitled(table: str, mode: str) -> str:
    """`render_table`'s text with `mode` in its first line (`Registry NAME (MODE; as of ...)`)."""
    first, newline, rest = table.partition("\n")
    head, _, tail = first.partition(" (")
    _, semicolon, as_of = tail.partition(";")
    return f"{head} ({mode};{as_of}{newline}{rest}" if semicolon else table

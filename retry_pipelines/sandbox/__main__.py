"""``python -m retry_pipelines.sandbox``: serve the FBR DI sandbox in the foreground.

The same options mount under the project CLI as ``retry-pipelines sandbox`` (``add_arguments`` +
``run``). The token is never printed: only where it came from.
"""

from __future__ import annotations

import argparse
import os
import sys

DEFAULT_TOKEN = "sandbox-token"
TOKEN_ENV = "FBR_API_TOKEN"


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--host", default="127.0.0.1", help="interface (default %(default)s)")
    parser.add_argument(
        "--port", type=int, default=8765, help="port, 0 for any free one (default %(default)s)"
    )
    parser.add_argument(
        "--token",
        help=f"the bearer token to accept (default: ${TOKEN_ENV}, else a fixed demo token)",
    )
    parser.add_argument(
        "--faults",
        default="",
        metavar="KIND=P,...",
        help="fault probabilities, e.g. http_500=0.05,html_502=0.05,rate_limit=0.05",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the fault draws")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added to every request")
    parser.add_argument(
        "--latency-jitter-ms", type=float, default=0.0, help="uniform extra latency, 0..this"
    )
    parser.add_argument(
        "--retry-after", type=int, default=1, help="Retry-After seconds sent with rate_limit"
    )
    parser.add_argument(
        "--hang-seconds",
        type=float,
        default=30.0,
        help="how long read_timeout and response_lost hang (default %(default)s)",
    )
    parser.add_argument(
        "--reload-token-after",
        type=int,
        help="after every N accepted requests refuse one with 401, as if the token had lapsed",
    )
    parser.add_argument(
        "--authorized-ntn",
        action="append",
        default=[],
        metavar="NTN",
        help="seller NTN/CNIC the token is bound to (repeatable; default: any)",
    )
    return parser


def config_from_args(args: argparse.Namespace):
    """The ``FbrSandboxConfig`` the options describe; ValueError on a bad option."""
    from retry_pipelines.sandbox.faults import FaultPlan
    from retry_pipelines.sandbox.fbr import FBR_FAULT_KINDS, FbrSandboxConfig

    plan = FaultPlan.parse(
        args.faults,
        seed=args.seed,
        latency_ms=args.latency_ms,
        latency_jitter_ms=args.latency_jitter_ms,
        known=FBR_FAULT_KINDS,
    )
    return FbrSandboxConfig(
        token=_token(args)[0],
        authorized_ntns=frozenset(args.authorized_ntn),
        faults=plan,
        retry_after_seconds=args.retry_after,
        hang_seconds=args.hang_seconds,
        reload_token_after=args.reload_token_after,
    )


def _token(args: argparse.Namespace) -> tuple[str, str]:
    if args.token:
        return args.token, "--token"
    if os.environ.get(TOKEN_ENV):
        return os.environ[TOKEN_ENV], f"${TOKEN_ENV}"
    return DEFAULT_TOKEN, "the built-in demo token"


def run(args: argparse.Namespace) -> int:
    from retry_pipelines.sandbox.fbr import create_fbr_app
    from retry_pipelines.sandbox.server import serve

    config = config_from_args(args)
    plan = config.faults
    token_note = f"token: {_token(args)[1]}"

    def announce(url: str) -> None:
        sys.stdout.write(
            f"FBR DI sandbox on {url} (faults: {plan.spec or 'none'}, seed {plan.seed}, "
            f"latency {plan.latency_ms:g}+{plan.latency_jitter_ms:g} ms, {token_note})\n"
        )
        sys.stdout.flush()

    serve(create_fbr_app(config), args.host, args.port, on_ready=announce)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = add_arguments(
        argparse.ArgumentParser(prog="python -m retry_pipelines.sandbox", description=__doc__)
    )
    args = parser.parse_args(argv)
    try:
        return run(args)
    except ValueError as exc:
        sys.stderr.write(f"sandbox: {exc}\n")
        return 2
    except OSError as exc:
        sys.stderr.write(f"sandbox: cannot serve on {args.host}:{args.port}: {exc}\n")
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

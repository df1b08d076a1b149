"""``python -m retry_pipelines.sandbox``: serve an FBR DI or PayPal Payouts sandbox (foreground).

``--gateway fbr`` (the default) serves the FBR DI sandbox, ``--gateway paypal`` the PayPal Payouts
one; faults, seed, latency and ``--hang-seconds`` apply to both, ``--retry-after`` to FBR's
throttles (PayPal's recorded 429 carries no Retry-After). The same
options mount under the project CLI as ``retry-pipelines sandbox`` (``add_arguments`` + ``run``).
Credentials are never printed: only where they came from.
"""

from __future__ import annotations

import argparse
import os
import sys

from retry_pipelines.sandbox import missing_requirement

GATEWAYS = ("fbr", "paypal")
DEFAULT_TOKEN = "sandbox-token"
TOKEN_ENV = "FBR_API_TOKEN"
CLIENT_ID_ENV = "PAYPAL_CLIENT_ID"
CLIENT_SECRET_ENV = "PAYPAL_CLIENT_SECRET"
FBR_ONLY = ("token", "reload_token_after", "authorized_ntn")
PAYPAL_ONLY = (
    "client_id",
    "client_secret",
    "token_ttl",
    "processing_after",
    "final_after",
    "unclaimed_return_after",
    "item_outcomes",
)


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument(
        "--gateway", choices=GATEWAYS, default="fbr", help="which sandbox (default %(default)s)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface (default %(default)s)")
    parser.add_argument(
        "--port", type=int, default=8765, help="port, 0 for any free one (default %(default)s)"
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
        "--retry-after",
        type=int,
        default=1,
        help="FBR: Retry-After of the 900800 throttle, and how far ahead nextAccessTime lies",
    )
    parser.add_argument(
        "--hang-seconds",
        type=float,
        default=30.0,
        help="how long read_timeout and response_lost hang (default %(default)s)",
    )
    fbr = parser.add_argument_group("FBR only")
    fbr.add_argument(
        "--token",
        help=f"the bearer token to accept (default: ${TOKEN_ENV}, else a fixed demo token)",
    )
    fbr.add_argument(
        "--reload-token-after",
        type=int,
        help="after every N accepted requests refuse one with 401, as if the token had lapsed",
    )
    fbr.add_argument(
        "--authorized-ntn",
        action="append",
        default=[],
        metavar="NTN",
        help="seller NTN/CNIC the token is bound to (repeatable; default: any)",
    )
    paypal = parser.add_argument_group("PayPal only")
    paypal.add_argument(
        "--client-id", help=f"OAuth client id (default: ${CLIENT_ID_ENV}, else a demo value)"
    )
    paypal.add_argument(
        "--client-secret",
        help=f"OAuth client secret (default: ${CLIENT_SECRET_ENV}, else a demo value)",
    )
    paypal.add_argument(
        "--token-ttl", type=float, help="seconds an access token is accepted (default 32400)"
    )
    paypal.add_argument(
        "--processing-after", type=float, help="seconds until a batch is PROCESSING (default 1)"
    )
    paypal.add_argument(
        "--final-after", type=float, help="seconds until a batch is SUCCESS (default 2)"
    )
    paypal.add_argument(
        "--unclaimed-return-after",
        type=float,
        help="seconds after a batch is final until its UNCLAIMED items are RETURNED (default 30 d)",
    )
    paypal.add_argument(
        "--item-outcomes",
        metavar="STATUS=P,...",
        help="chance of each item outcome, e.g. FAILED=0.05,UNCLAIMED=0.05 (rest SUCCESS)",
    )
    return parser


def config_from_args(args: argparse.Namespace):
    """The sandbox config the options describe (FBR or PayPal); ValueError on a bad option."""
    gateway = getattr(args, "gateway", "fbr")
    _refuse_foreign_options(args, gateway)
    if gateway == "paypal":
        return _paypal_config(args)
    from retry_pipelines.sandbox.fbr import FBR_FAULT_KINDS, FbrSandboxConfig

    return FbrSandboxConfig(
        token=_token(args)[0],
        authorized_ntns=frozenset(args.authorized_ntn),
        faults=_plan(args, FBR_FAULT_KINDS),
        retry_after_seconds=args.retry_after,
        hang_seconds=args.hang_seconds,
        reload_token_after=args.reload_token_after,
    )


def _refuse_foreign_options(args: argparse.Namespace, gateway: str) -> None:
    foreign = PAYPAL_ONLY if gateway == "fbr" else FBR_ONLY
    given = [name for name in foreign if getattr(args, name, None) not in (None, [])]
    if given:
        options = ", ".join("--" + name.replace("_", "-") for name in given)
        raise ValueError(f"{options} do(es) not apply to --gateway {gateway}")


def _plan(args: argparse.Namespace, known):
    from retry_pipelines.sandbox.faults import FaultPlan

    return FaultPlan.parse(
        args.faults,
        seed=args.seed,
        latency_ms=args.latency_ms,
        latency_jitter_ms=args.latency_jitter_ms,
        known=known,
    )


def _paypal_config(args: argparse.Namespace):
    from retry_pipelines.sandbox.paypal import PAYPAL_FAULT_KINDS, PaypalSandboxConfig

    optional = {
        "token_ttl_seconds": args.token_ttl,
        "processing_after_seconds": args.processing_after,
        "final_after_seconds": args.final_after,
        "unclaimed_return_after_seconds": args.unclaimed_return_after,
    }
    return PaypalSandboxConfig(
        client_id=_credential(args.client_id, "--client-id", CLIENT_ID_ENV, "id")[0],
        client_secret=_credential(
            args.client_secret, "--client-secret", CLIENT_SECRET_ENV, "secret"
        )[0],
        faults=_plan(args, PAYPAL_FAULT_KINDS),
        retry_after_seconds=args.retry_after,
        hang_seconds=args.hang_seconds,
        item_outcomes=_outcomes(args.item_outcomes),
        **{k: v for k, v in optional.items() if v is not None},
    )


def _outcomes(spec: str | None) -> dict[str, float]:
    outcomes: dict[str, float] = {}
    for part in (spec or "").split(","):
        if not part.strip():
            continue
        status, sep, value = part.partition("=")
        problem = f"item outcome {part.strip()!r}: expected STATUS=P, e.g. FAILED=0.05"
        if not sep:
            raise ValueError(problem)
        try:
            outcomes[status.strip().upper()] = float(value)
        except ValueError:
            raise ValueError(problem) from None
    return outcomes


def _token(args: argparse.Namespace) -> tuple[str, str]:
    if args.token:
        return args.token, "--token"
    if os.environ.get(TOKEN_ENV):
        return os.environ[TOKEN_ENV], f"${TOKEN_ENV}"
    return DEFAULT_TOKEN, "the built-in demo token"


def _credential(given: str | None, option: str, env: str, which: str) -> tuple[str, str]:
    from retry_pipelines.sandbox.paypal import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET

    if given:
        return given, option
    if os.environ.get(env):
        return os.environ[env], f"${env}"
    default = DEFAULT_CLIENT_ID if which == "id" else DEFAULT_CLIENT_SECRET
    return default, f"the built-in demo client {which}"


def run(args: argparse.Namespace) -> int:
    from retry_pipelines.sandbox.server import serve

    config = config_from_args(args)
    plan = config.faults
    if getattr(args, "gateway", "fbr") == "paypal":
        from retry_pipelines.sandbox.paypal import create_paypal_app

        app = create_paypal_app(config)
        id_source = _credential(args.client_id, "--client-id", CLIENT_ID_ENV, "id")[1]
        secret_source = _credential(
            args.client_secret, "--client-secret", CLIENT_SECRET_ENV, "secret"
        )[1]
        name = "PayPal Payouts sandbox"
        note = f"client id: {id_source}, client secret: {secret_source}"
    else:
        from retry_pipelines.sandbox.fbr import create_fbr_app

        app = create_fbr_app(config)
        name = "FBR DI sandbox"
        note = f"token: {_token(args)[1]}"

    def announce(url: str) -> None:
        sys.stdout.write(
            f"{name} on {url} (faults: {plan.spec or 'none'}, seed {plan.seed}, "
            f"latency {plan.latency_ms:g}+{plan.latency_jitter_ms:g} ms, {note})\n"
        )
        sys.stdout.flush()

    serve(app, args.host, args.port, on_ready=announce)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = add_arguments(
        argparse.ArgumentParser(prog="python -m retry_pipelines.sandbox", description=__doc__)
    )
    args = parser.parse_args(argv)
    missing = missing_requirement()
    if missing:
        sys.stderr.write(f"sandbox: {missing}\n")
        return 2
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

"""`equiguard sidecar`: run the recording proxy beside a BentoML server."""

from __future__ import annotations

import argparse
import asyncio
import signal
import ssl
import sys
from dataclasses import replace

import uvloop
from equiguard.contracts.sidecar_config import ConfigError, SidecarConfig, load_config
from equiguard.sidecar.app import running
from equiguard.sidecar.logs import configure_logging
from equiguard.sidecar.token import BearerToken, TokenUnavailable

SWITCH_INTERVAL_SECONDS = 0.0005


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="equiguard sidecar",
        description="Proxy a BentoML server, record its predictions, join outcomes "
        "and serve per-subgroup statistics.",
    )
    parser.add_argument("--config", required=True, help="the sidecar's YAML configuration file")
    parser.add_argument("--host", help="listen address (overrides sidecar.host)")
    parser.add_argument("--port", type=int, help="listen port (overrides sidecar.port)")
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    # The store's writer thread and the metrics rendering hold the GIL in short
    # bursts; a shorter switch interval (default 5 ms) bounds how long the
    # event loop, and so a proxied request, waits for it.
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
    try:
        config = load_config(args.config)
    except ConfigError as error:
        print(f"equiguard sidecar: {error}", file=sys.stderr)
        return 2
    config = replace(
        config,
        host=args.host if args.host is not None else config.host,
        port=args.port if args.port is not None else config.port,
    )
    try:
        BearerToken(config.token_file, config.token_env)
    except TokenUnavailable as error:
        field = "tokenFile" if config.token_file else "tokenEnv"
        print(f"equiguard sidecar: sidecar.{field}: {error}", file=sys.stderr)
        return 2
    try:
        tls = server_tls(config)
    except (OSError, ssl.SSLError) as error:
        print(
            f"equiguard sidecar: sidecar.tls: cannot load the certificate: {error}", file=sys.stderr
        )
        return 2
    # No access log anywhere: a request line may carry identifiers in its query string.
    uvloop.run(_serve(config, tls))
    return 0


async def _serve(config: SidecarConfig, tls: ssl.SSLContext | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signal_number, stop.set)
    async with running(config, tls):
        await stop.wait()


def server_tls(config: SidecarConfig) -> ssl.SSLContext | None:
    """The TLS context of the listening port, when a certificate is configured."""
    if not config.tls_cert_file:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(config.tls_cert_file, config.tls_key_file)
    return context

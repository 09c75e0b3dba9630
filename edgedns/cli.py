"""Command line: ``edgedns serve``, ``edgedns check``, ``edgedns --version``.

Commands only turn arguments into a `Config` and hand it on; they hold no logic of their own.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import click
from dnslib import QTYPE

from edgedns import __version__
from edgedns import config as config_mod
from edgedns.admin import status as status_mod
from edgedns.authority.lint import dangling_targets
from edgedns.config import documents as config_documents
from edgedns.config import yaml as yaml_file
from edgedns.config.documents import Memo
from edgedns.dns import names
from edgedns.etcd import registry
from edgedns.etcd import source as etcd_source
from edgedns.etcd.client import EtcdClient, EtcdError, EtcdSettings, Refused, endpoint_url
from edgedns.pools.health import icmp
from edgedns.pools.health.icmp import IcmpUnavailable
from edgedns.server import lifecycle as server
from edgedns.server import limits

LOG_LEVELS = ("debug", "info", "warning", "error")


def _load(path: str, listen: tuple[str, ...] = ()) -> config_mod.Config:
    try:
        return etcd_source.load_any(path, listen)
    except config_mod.ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _etcd_user(command):
    """--user and --password (or EDGEDNS_ETCD_PASSWORD), for an etcd with authentication."""
    command = click.option("--password", envvar="EDGEDNS_ETCD_PASSWORD",
                           help="etcd password (or set EDGEDNS_ETCD_PASSWORD).")(command)
    return click.option("--user", help="etcd user, when etcd has authentication on.")(command)


@click.group()
@click.version_option(__version__, prog_name="edgedns")
def main() -> None:
    """Authoritative DNS for private zones, with answers from health-checked pools."""


@main.command()
@click.option("-c", "--config", "config_path", required=True, type=click.Path(dir_okay=False),
              help="The YAML config file.")
@click.option("-l", "--listen", multiple=True, metavar="ADDR:PORT",
              help="Serve on this address instead of the config's 'listen' (repeatable).")
@click.option("--admin", "admin", metavar="ADDR:PORT|off",
              help="Serve the admin endpoint here instead of the config's 'admin', or not "
              "at all with 'off'.")
@click.option("--log-level", type=click.Choice(LOG_LEVELS), default="info", show_default=True)
def serve(config_path: str, listen: tuple[str, ...], admin: str | None, log_level: str) -> None:
    """Serve the zones in CONFIG over UDP and TCP until SIGINT or SIGTERM."""
    logging.basicConfig(
        stream=sys.stderr, level=log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # What the operator asked for in any case: the start-up summary and, when the config
    # turns it on, the query log, whatever the level of the rest.
    for always in ("edgedns.summary", "edgedns.querylog"):
        logging.getLogger(always).setLevel(min(logging.INFO, logging.getLevelName(
            log_level.upper())))
    try:
        memo = Memo()  # what the first load parsed, for reloads to reuse
        cfg = etcd_source.load_any(config_path, listen, admin, memo)
    except config_mod.ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        server.run(cfg, listen, admin, memo)
    except (OSError, IcmpUnavailable, LookupError) as exc:
        # An OSError's strerror is the sentence we made; str() would prefix "[Errno N]".
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise click.ClickException(f"cannot serve: {reason}") from None


@main.command()
@click.option("-c", "--config", "config_path", required=True, type=click.Path(dir_okay=False),
              help="The YAML config file.")
def check(config_path: str) -> None:
    """Validate CONFIG and summarise it; exit non-zero with the error when it is bad."""
    cfg = _load(config_path)
    click.echo(f"{cfg.source}: OK")
    click.echo(f"listen: {', '.join(str(e) for e in cfg.listen)}")
    for zone in cfg.zones:
        summary = " ".join(f"{QTYPE.get(t)}={n}" for t, n in sorted(zone.counts.items()))
        click.echo(f"zone {names.to_text(zone.origin)}: {len(zone.nodes)} names, "
                   f"{zone.records} records ({summary})")
    for pool in cfg.pools:
        checks = sorted({m.check.type for m in pool.members})
        click.echo(f"pool {names.to_text(pool.name)}: {len(pool.members)} members, "
                   f"policy {pool.policy}, checks {'/'.join(checks)}, "
                   f"when all down: {pool.when_all_down}")
    if cfg.forward is None:
        click.echo("forward: off (names outside the zones get REFUSED)")
    else:
        routes = [("default", cfg.forward.default),
                  *((names.to_text(zone), route) for zone, route in cfg.forward.zones)]
        for label, route in routes:
            click.echo(f"forward {label}: {', '.join(str(u) for u in route.upstreams)} "
                       f"({route.policy}, timeout {route.timeout:g}s)")
    if cfg.vrrp is not None:
        vrrp = cfg.vrrp
        click.echo(f"vrrp: virtual router {vrrp.vrid} on {vrrp.interface}, "
                   f"{', '.join(str(a) for a in vrrp.addresses)}, priority {vrrp.priority}, "
                   f"adverts every {vrrp.advert_interval:g}s (VRRPv{vrrp.version}), "
                   f"preempt {'on' if vrrp.preempt else 'off'}")
    for warning in _warnings(cfg):
        click.echo(f"warning: {warning}")


def _warnings(cfg: config_mod.Config) -> list[str]:
    """What loads but will not work as meant, here or for clients."""
    found = list(dangling_targets(cfg.zones))
    for endpoint in cfg.listen:
        if not limits.may_bind(endpoint.port):
            found.append(f"listen {endpoint}: this user may not bind port {endpoint.port}; "
                         "serve will fail unless run as root or with CAP_NET_BIND_SERVICE")
    icmp_versions = {m.version for p in cfg.pools for m in p.members if m.check.type == "icmp"}
    reason = icmp.missing_privilege(icmp_versions) if icmp_versions else None
    if reason is not None:
        found.append(f"ICMP checks cannot run as this user, so serve will refuse: {reason}")
    if cfg.vrrp is not None and os.geteuid() != 0:
        found.append("vrrp needs root, or CAP_NET_ADMIN and CAP_NET_RAW (systemd: "
                     "AmbientCapabilities=), or serve will refuse")
    return found


@main.command()
@click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False),
              help="Ask the edgedns serving this config: its admin address and token.")
@click.option("--admin", "admin_url", metavar="URL|ADDR:PORT",
              help="The admin endpoint of the edgedns to ask  [default: the config's with "
              "-c, else http://127.0.0.1:9153]")
@click.option("--token", envvar="EDGEDNS_ADMIN_TOKEN", help="Bearer token, if the admin "
              "endpoint needs one (or set EDGEDNS_ADMIN_TOKEN; -c reads the config's).")
@click.option("--json", "as_json", is_flag=True, help="Print the raw JSON snapshot.")
@click.option("--timeout", default=3.0, show_default=True, help="Seconds to wait for it.")
@click.option("--fleet", is_flag=True, help="Show every node in the etcd registry instead "
              "(needs -c with a bootstrap file, or --etcd).")
@click.option("--etcd", "endpoints", metavar="URL[,URL...]",
              help="With --fleet: the etcd cluster to read (else the bootstrap file's).")
@click.option("--prefix", default=None, help="With --fleet and --etcd: the documents' "
              "prefix  [default: /edgedns/]")
@_etcd_user
def status(config_path: str | None, admin_url: str | None, token: str | None, as_json: bool,
           timeout: float, fleet: bool, endpoints: str | None, prefix: str | None,
           user: str | None, password: str | None) -> None:
    """Show pools and members with their state; exit 1 when a pool is fully down, 2 when
    edgedns cannot be asked or its health engine is stalled (for monitoring and keepalived's
    vrrp_script). With --fleet: every node registered in etcd; exit 1 when one lags behind
    the newest revision."""
    if fleet:
        _fleet(config_path, endpoints, prefix, as_json, user, password)
        return
    url, token = _admin_target("status", config_path, admin_url, token)
    try:
        snap = json.loads(_ask_admin("status", url + "/status", token, timeout))
    except ValueError as exc:
        click.echo(f"edgedns status: {url}/status did not answer JSON: {exc}", err=True)
        sys.exit(2)
    click.echo(json.dumps(snap, indent=2) if as_json else status_mod.table(snap))
    if snap["health_engine"]["stalled"]:
        click.echo("health engine stalled: answers no longer follow backend health", err=True)
        sys.exit(2)
    down = status_mod.pools_fully_down(snap)
    if down:
        click.echo(f"fully down: {', '.join(down)}", err=True)
        sys.exit(1)


def _fleet(config_path: str | None, endpoints: str | None, prefix: str | None,
           as_json: bool, user: str | None, password: str | None) -> None:
    if endpoints:
        settings = EtcdSettings(_endpoints(endpoints), prefix or "/edgedns/", username=user,
                                password=password)
    elif config_path:
        try:
            found = config_mod.load_source(config_path)
        except config_mod.ConfigError as exc:
            raise click.ClickException(str(exc)) from None
        if found is None:
            raise click.ClickException(f"{config_path} has no `source: {{etcd: ...}}`")
        settings = found[0]
    else:
        raise click.ClickException("--fleet needs -c BOOTSTRAP or --etcd URL[,URL...]")
    try:
        revision, nodes = asyncio.run(_read_fleet(settings))
    except EtcdError as exc:
        click.echo(f"edgedns status: {exc}", err=True)
        sys.exit(2)
    if as_json:
        click.echo(json.dumps({"revision": revision, "nodes": nodes}, indent=2))
    else:
        click.echo(f"etcd {','.join(settings.endpoints)} {settings.prefix}: documents at "
                   f"revision {revision}, {len(nodes)} nodes")
        for line in status_mod.fleet_lines(nodes, revision):
            click.echo(line)
    lagging = [n.get("node", "?") for n in nodes if n.get("lagging")]
    if lagging:
        click.echo(f"lagging behind revision {revision}: {', '.join(lagging)}", err=True)
        sys.exit(1)


async def _read_fleet(settings: EtcdSettings) -> tuple[int, list[dict]]:
    client = EtcdClient(settings)
    await client.authenticate()
    return await registry.fleet(client, settings.prefix)


def _admin_target(command: str, config_path: str | None, admin_url: str | None,
                  token: str | None) -> tuple[str, str | None]:
    """The admin endpoint's base URL and token: from the options, else from the config's
    `admin` section with -c, else the default address. Exits 2 when it cannot be known."""
    if config_path is not None:
        try:
            admin = config_mod.load_admin(config_path)
        except config_mod.ConfigError as exc:
            click.echo(f"edgedns {command}: {exc}", err=True)
            sys.exit(2)
        if admin.listen is None and admin_url is None:
            click.echo(f"edgedns {command}: {config_path} turns the admin endpoint off",
                       err=True)
            sys.exit(2)
        if admin_url is None and admin.listen is not None:
            admin_url = f"{_url_host(admin.listen.host)}:{admin.listen.port}"
        token = token or admin.token
    url = admin_url or "http://127.0.0.1:9153"
    if "://" not in url:
        url = "http://" + url
    return url.rstrip("/"), token


def _ask_admin(command: str, url: str, token: str | None, timeout: float,
               post: bool = False) -> bytes:
    """The body the admin endpoint answers at `url`; exits 2 (saying why) on any failure."""
    request = urllib.request.Request(url, method="POST" if post else "GET")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.read()
    except urllib.error.HTTPError as exc:
        hint = ""
        if exc.code == 401:
            hint = (" (it needs the admin token: --token T, EDGEDNS_ADMIN_TOKEN, or -c FILE to "
                    "read it from the config)" if not token else " (the token was refused)")
        detail = exc.read().decode(errors="replace").strip()
        click.echo(f"edgedns {command}: {url.split('?')[0]} answered {exc.code} {exc.reason}"
                   f"{hint}{': ' + detail if detail and exc.code != 401 else ''}", err=True)
        sys.exit(2)
    except OSError as exc:
        click.echo(f"edgedns {command}: cannot read {url.split('?')[0]}: {exc}", err=True)
        sys.exit(2)


def _drain_command(drained: bool):
    name = "drain" if drained else "undrain"

    @main.command(name=name)
    @click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False),
                  help="The config of the edgedns to tell: its admin address and token.")
    @click.option("--admin", "admin_url", metavar="URL|ADDR:PORT",
                  help="Its admin endpoint  [default: the config's with -c, else "
                  "http://127.0.0.1:9153]")
    @click.option("--token", envvar="EDGEDNS_ADMIN_TOKEN", help="Bearer token, if needed.")
    @click.option("--timeout", default=3.0, show_default=True, help="Seconds to wait.")
    @click.argument("pool")
    @click.argument("member")
    def command(config_path: str | None, admin_url: str | None, token: str | None,
                timeout: float, pool: str, member: str) -> None:
        url, token = _admin_target(name, config_path, admin_url, token)
        query = urllib.parse.urlencode({"pool": pool, "member": member})
        click.echo(_ask_admin(name, f"{url}/{name}?{query}", token, timeout, post=True)
                   .decode().strip())

    command.__doc__ = (
        "Stop handing out MEMBER (an address) of POOL (its DNS name, web.site.lan); it is "
        "still probed, and stays drained across reloads and restarts." if drained else
        "Hand out MEMBER of POOL again after `edgedns drain`.")
    return command


drain = _drain_command(True)
undrain = _drain_command(False)


@main.command()
@click.option("-c", "--config", "config_path", required=True, type=click.Path(dir_okay=False),
              help="A config file whose zones and shared settings to push.")
@click.option("--etcd", "endpoints", required=True, metavar="URL[,URL...]",
              help="The etcd cluster's client URLs.")
@click.option("--prefix", default="/edgedns/", show_default=True)
@_etcd_user
def push(config_path: str, endpoints: str, prefix: str, user: str | None,
         password: str | None) -> None:
    """Validate CONFIG and make the keys under PREFIX its zones and shared settings, in one
    transaction that fails if another push changed them meanwhile."""
    cfg = _load(config_path)
    if cfg.etcd is not None:
        raise click.ClickException(f"{config_path} is a bootstrap file (it has `source`): "
                                   "push the file that holds the zones")
    raw = _raw(config_path)
    try:
        documents, left = config_documents.from_tree(prefix, raw, config_path)
    except config_mod.ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    client = EtcdClient(EtcdSettings(_endpoints(endpoints), prefix, username=user,
                                     password=password))
    try:
        revision = asyncio.run(_push(client, prefix, documents))
    except Refused as exc:
        size = sum(len(k) + len(v) for k, v in documents.items())
        raise click.ClickException(
            f"push: {exc}. A push is one transaction, here of up to {len(documents)} keys "
            f"and {size:,} bytes; etcd allows 128 operations and 1.5 MiB per request unless "
            "started with larger --max-txn-ops and --max-request-bytes") from None
    except EtcdError as exc:
        raise click.ClickException(f"push: {exc}") from None
    click.echo(f"pushed {len(documents) - 1} zones and the shared settings to {prefix} "
               f"(revision {revision})")
    if left:
        click.echo(f"not pushed, node-local: {', '.join(left)}")


async def _push(client: EtcdClient, prefix: str, documents: dict[str, str]) -> int:
    await client.authenticate()
    return await client.replace_prefix(prefix, documents, None)


@main.command()
@click.option("--etcd", "endpoints", required=True, metavar="URL[,URL...]",
              help="The etcd cluster's client URLs.")
@click.option("--prefix", default="/edgedns/", show_default=True)
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="The file to write.")
@_etcd_user
def pull(endpoints: str, prefix: str, output: str, user: str | None,
         password: str | None) -> None:
    """Write the zones and shared settings under PREFIX to a config file (without the
    node-local keys: add `listen` and the rest to serve it)."""
    settings = EtcdSettings(_endpoints(endpoints), prefix, username=user, password=password)
    try:
        documents = asyncio.run(etcd_source.read(settings))
        tree, _ = config_documents.tree(prefix, documents.documents)
    except EtcdError as exc:
        raise click.ClickException(f"pull: {exc}") from None
    except config_mod.ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    text = f"# edgedns pull {prefix} at revision {documents.revision}\n" + \
        yaml_file.dump(tree)
    Path(output).write_text(text, encoding="utf-8")
    click.echo(f"wrote {len(tree.get('zones', {}))} zones (revision {documents.revision}) "
               f"to {output}")


def _endpoints(text: str) -> tuple[str, ...]:
    return tuple(endpoint_url(part) for part in text.split(",") if part.strip())


def _raw(path: str) -> dict:
    try:
        raw = yaml_file.load(Path(path).read_text(encoding="utf-8"), path)
    except (OSError, yaml_file.YamlError) as exc:
        raise click.ClickException(f"{path}: {exc}") from None
    return raw if isinstance(raw, dict) else {}


def _url_host(host: str) -> str:
    """`host` as a URL writes it: an unspecified address asks this host, IPv6 in brackets."""
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1" if host == "0.0.0.0" else "::1"
    return f"[{host}]" if ":" in host else host

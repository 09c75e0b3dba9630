"""Status at a glance: a JSON snapshot of a running server, and its table for people.

`snapshot` is what ``/status`` serves; `table` renders one for ``edgedns status``; and
`pools_fully_down` is what that command's exit code says (for monitoring and keepalived).
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from dnslib import RCODE

from edgedns import __version__
from edgedns.dns import names
from edgedns.dns.names import Name

if TYPE_CHECKING:
    from edgedns.pools.pool import PoolSet
    from edgedns.server.lifecycle import Server


def _iso(wall: float | None) -> str | None:
    if wall is None:
        return None
    return datetime.fromtimestamp(wall, timezone.utc).isoformat(timespec="seconds")


def snapshot(server: Server) -> dict[str, Any]:
    """Everything an operator asks first, as plain JSON-ready data."""
    pools = server.pools
    pool_list = []
    for pool in pools.pools.values():
        members = []
        for member in pool.members:
            target = member.target
            health = pools.health.get(target) if target is not None else None
            last = health.last if health is not None else None
            members.append({
                "address": member.address,
                "up": pools.is_up(member),
                "drained": (pool.name, member.address) in pools.drained,
                "check": str(target) if target is not None else "none",
                "probed": health.probed if health is not None else True,
                "reason": last.reason if last is not None else None,
                "rtt_ms": round(last.rtt * 1000, 3) if last and last.rtt is not None else None,
                "since": _iso(health.changed_at) if health is not None else None,
                "successes": health.successes if health is not None else None,
                "failures": health.failures if health is not None else None,
                "weight": member.weight,
                "priority": member.priority,
                **(server.history.summary(target, names.to_text(pool.name), member.address)
                   if target is not None else {}),
            })
        pool_list.append({
            "name": names.to_text(pool.name),
            "policy": pool.policy,
            "when_all_down": pool.when_all_down,
            "healthy": sum(m["up"] for m in members),
            "members": members,
            "answering": _answering(pools, pool.name, pool.families()),
        })
    zones = []
    for zone in server.config.zones:
        zones.append({"name": names.to_text(zone.origin), "names": len(zone.nodes),
                      "records": zone.records})
    out: dict[str, Any] = {
        "version": __version__,
        "config": str(server.config.source),
        "uptime_seconds": round(time.monotonic() - server.started, 1),
        "ready": server.ready(),
        "listen": [str(e) for e in server.bound],
        "last_reload": {
            "ok": server.reloads.last_error is None,
            "at": _iso(server.reloads.last_at),
            "error": server.reloads.last_error,
            "successes": server.reloads.successes,
            "failures": server.reloads.failures,
        },
        "health_engine": _engine(server),
        "queries": _queries(server),
        "changes": list(reversed(server.history.log))[:CHANGES_SHOWN],
        "zones": zones,
        "pools": pool_list,
    }
    config = server.config
    if config.etcd is not None and config.documents is not None:
        documents = config.documents
        out["etcd"] = {
            "endpoints": list(config.etcd.endpoints),
            "prefix": config.etcd.prefix,
            "serving_revision": documents.revision,
            "watched_revision": server.etcd.revision,
            "connected": server.etcd.connected,
            "last_error": server.etcd.last_error,
            "from_cache": documents.from_cache,
            "cache_age_seconds": (round(time.time() - documents.saved_at, 1)
                                  if documents.from_cache and documents.saved_at else None),
            "node": config.etcd.node,
            "fleet_revision": server.fleet_revision,
            "fleet": server.fleet,
        }
    if server.vrrp is not None:
        vrrp = server.vrrp.status()
        for router in vrrp["routers"]:
            router["since"] = _iso(router["since"])
        out["vrrp"] = vrrp
    forwarder = server.handler.forwarder
    if forwarder is not None:
        out["upstreams"] = [
            {"upstream": str(s.upstream), "up": not s.down, "consecutive_failures": s.fails}
            for s in forwarder.states()
        ]
        out["cache"] = {"entries": len(forwarder.cache), "hits": forwarder.cache.hits,
                        "misses": forwarder.cache.misses}
    return out


def node_report(server: Server) -> dict[str, Any]:
    """What this node tells the etcd registry about itself (`edgedns.etcd.registry`)."""
    config, pools = server.config, server.pools
    documents = config.documents
    down = [names.to_text(name) for name, pool in pools.pools.items()
            if pool.members and not any(pools.is_up(m) for m in pool.members)]
    return {
        "node": config.etcd.node if config.etcd is not None else "",
        "version": __version__,
        "revision": documents.revision if documents is not None else 0,
        "from_cache": bool(documents and documents.from_cache),
        "listen": [str(e) for e in server.bound],
        "pools": len(pools.pools),
        "pools_down": down,
        "vrrp": ([f"{r['family']} {r['state']}" for r in server.vrrp.status()["routers"]]
                 if server.vrrp is not None else []),
        "at": _iso(time.time()),
    }


CHANGES_SHOWN = 50
"""The newest health changes `/status` lists."""


def _answering(pools: PoolSet, name: Name, families: set[int]) -> list[str] | str:
    """The addresses the pool hands out now (every variant's), or "SERVFAIL"."""
    found: dict[str, None] = {}  # ordered, each address once
    for version in sorted(families):
        selection = pools.selection(name, version)
        if selection.servfail:
            return "SERVFAIL"
        for variant in selection.variants:
            found.update(dict.fromkeys(variant))
    return list(found)


def _queries(server: Server) -> list[dict[str, Any]]:
    """Queries answered so far by zone and rcode (both transports, every type)."""
    counts: dict[tuple[str, int], int] = {}
    for (zone, _, rcode, _), n in list(server.stats.queries.items()):
        counts[(zone, rcode)] = counts.get((zone, rcode), 0) + n
    return [{"zone": zone or "-", "rcode": RCODE.get(rcode), "count": n}
            for (zone, rcode), n in sorted(counts.items())]


def _engine(server: Server) -> dict[str, Any]:
    scheduler = server.scheduler
    last = scheduler.last_result
    stalled = scheduler.stalled()
    return {
        "stalled": stalled is not None,
        "seconds_since_last_result": (round(scheduler.clock() - last, 1)
                                      if last is not None else None),
        "probe_errors": scheduler.probe_errors,
        "task_restarts": dict(server.supervisor.restarts),
    }


def pools_fully_down(snap: dict[str, Any]) -> list[str]:
    """Names of pools with no healthy member."""
    return [p["name"] for p in snap.get("pools", []) if p["members"] and not p["healthy"]]


def fleet_lines(fleet: list[dict[str, Any]], revision: int) -> list[str]:
    """The registry's nodes, one line each (for `table` and ``edgedns status --fleet``)."""
    lines = []
    for node in fleet:
        marks = [m for m, on in (("LAGGING", node.get("lagging")),
                                 ("FROM CACHE", node.get("from_cache"))) if on]
        down = node.get("pools_down") or []
        lines.append(
            f"  node {node.get('node', '?')}  revision {node.get('revision', '?')}"
            f"{' of ' + str(revision) if revision else ''}  {node.get('version', '?')}  "
            f"pools {node.get('pools', 0) - len(down)}/{node.get('pools', 0)} ok  "
            f"{', '.join(node.get('vrrp') or []) or 'no vrrp'}  seen {node.get('at', '?')}"
            + (f"  {' '.join(marks)}" if marks else ""))
    return lines


def table(snap: dict[str, Any]) -> str:
    """A readable summary: one line per member, grouped by pool."""
    reload = snap["last_reload"]
    lines = [
        f"edgedns {snap['version']}  config {snap['config']}  up {snap['uptime_seconds']:.0f}s  "
        f"{'ready' if snap['ready'] else 'NOT READY'}",
    ]
    if not reload["ok"]:
        lines.append(f"LAST RELOAD FAILED at {reload['at']}: {reload['error']}")
    etcd = snap.get("etcd")
    if etcd:
        state = "connected" if etcd["connected"] else f"NOT CONNECTED ({etcd['last_error']})"
        cached = (f", FROM THE CACHE ({etcd['cache_age_seconds']} s old)"
                  if etcd["from_cache"] else "")
        lines.append(f"etcd {','.join(etcd['endpoints'])} {etcd['prefix']}: serving revision "
                     f"{etcd['serving_revision']}{cached}, {state}")
        lines.extend(fleet_lines(etcd.get("fleet") or [], etcd.get("fleet_revision", 0)))
    engine = snap["health_engine"]
    if engine["stalled"]:
        lines.append(f"HEALTH ENGINE STALLED: no probe result for "
                     f"{engine['seconds_since_last_result']} s; states shown may be stale")
    for pool in snap["pools"]:
        lines.append("")
        state = "DOWN" if pool["members"] and not pool["healthy"] else "ok"
        lines.append(f"pool {pool['name']}  {pool['healthy']}/{len(pool['members'])} healthy  "
                     f"policy {pool['policy']}  [{state}]")
        width = max(len(m["address"]) for m in pool["members"])
        for m in pool["members"]:
            rtt = f"{m['rtt_ms']:.1f}ms" if m["rtt_ms"] is not None else "-"
            since = m["since"] or "-"
            reason = m["reason"] or ("no check" if m["check"] == "none" else "not probed yet")
            state = "UP" if m["up"] else "DOWN"
            drained = "  DRAINED" if m.get("drained") else ""
            lines.append(f"  {m['address']:<{width}}  {state:<4}  {rtt:>8}  since {since}  "
                         f"{m['check']}: {reason}{drained}")
    vrrp = snap.get("vrrp")
    for router in vrrp["routers"] if vrrp else []:
        lines.append("")
        master = "this node" if router["master"] == router["self"] else router["master"] or "-"
        lines.append(f"vrrp {router['family']} vrid {router['vrid']} on {vrrp['interface']}  "
                     f"{router['state'].upper()}  priority {router['priority']}  master "
                     f"{master}  since {router['since'] or '-'}  ({router['reason']})  "
                     f"{', '.join(router['addresses'])}")
    for up in snap.get("upstreams", []):
        if not lines[-1].startswith("upstream"):
            lines.append("")
        lines.append(f"upstream {up['upstream']}  {'UP' if up['up'] else 'DOWN'}")
    return "\n".join(lines)

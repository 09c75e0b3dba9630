"""Response-rate limiting (RRL) of UDP replies: a client prefix over the rate gets every
`slip`-th reply truncated and the rest dropped; clients under it, other prefixes, loopback
and TCP are never touched."""

from __future__ import annotations

import socket

import dns.flags
import dns.message
import dns.rcode
import pytest

from edgedns.server import ratelimit
from edgedns.server.ratelimit import RateLimitSettings, ResponseRateLimit, TokenBucket

REPLY = (b"\x00\x07\x84\x00\x00\x01\x00\x01\x00\x00\x00\x00"  # NOERROR, one answer
         b"\x03www\x07example\x03lan\x00\x00\x01\x00\x01"
         b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x01\x2c\x00\x04\xc0\x00\x02\x01")
QUESTION_END = 12 + 17 + 4
NAME = b"\x03www\x07example\x03lan\x00"


def limiter(rate: int = 10, slip: int = 2) -> ResponseRateLimit:
    return ResponseRateLimit(RateLimitSettings(responses_per_second=rate, slip=slip, exempt=()))


def outcomes(rrl: ResponseRateLimit, client: str, count: int, now: float = 100.0) -> list[str]:
    out = []
    for _ in range(count):
        reply = rrl.limit(client, REPLY, NAME, QUESTION_END, now)
        out.append("drop" if reply is None else "tc" if reply[2] & 0x02 else "full")
    return out


def test_replies_within_the_rate_are_untouched() -> None:
    assert outcomes(limiter(), "192.0.2.1", 10) == ["full"] * 10


def test_over_the_rate_every_slip_th_reply_is_truncated_and_the_rest_dropped() -> None:
    rrl = limiter(rate=10, slip=2)
    assert outcomes(rrl, "192.0.2.1", 16)[10:] == ["drop", "tc"] * 3
    assert (rrl.dropped, rrl.slipped) == (3, 3)


def test_slip_zero_drops_everything_over_the_rate() -> None:
    assert set(outcomes(limiter(rate=5, slip=0), "192.0.2.1", 20)[5:]) == {"drop"}


def slipped(reply: bytes) -> dns.message.Message:
    """What a source already over the rate gets for `reply` with slip 1: always a TC."""
    rrl = limiter(rate=1, slip=1)
    outcomes(rrl, "192.0.2.1", 1)
    out = rrl.limit("192.0.2.1", reply, NAME, QUESTION_END, 100.0)
    assert out is not None
    message = dns.message.from_wire(out)
    assert message.flags & dns.flags.TC and not message.answer
    return message


def test_a_truncated_reply_is_the_question_with_tc() -> None:
    assert slipped(REPLY).question[0].name.to_text() == "www.example.lan."


def test_a_truncated_reply_to_an_edns_query_keeps_the_opt() -> None:
    opt = b"\x00\x00\x29\x04\xd0\x00\x00\x80\x00\x00\x00"  # DO set
    message = slipped(REPLY[:11] + b"\x01" + REPLY[12:] + opt)
    assert message.edns == 0 and message.ednsflags & dns.flags.DO


def test_the_rate_refills_with_time_once_the_debt_is_paid() -> None:
    rrl = limiter(rate=10)
    assert "drop" in outcomes(rrl, "192.0.2.1", 15, now=100.0)  # 5 over: a debt of 5
    assert outcomes(rrl, "192.0.2.1", 10, now=101.0).count("full") == 5
    assert outcomes(rrl, "192.0.2.1", 10, now=103.0) == ["full"] * 10


def test_a_source_that_stays_over_the_rate_stays_limited() -> None:
    rrl = limiter(rate=10)
    seen = [o for second in range(5) for o in outcomes(rrl, "192.0.2.1", 100, now=100.0 + second)]
    assert seen.count("full") == 10  # the first second's burst, then nothing in full


def test_a_client_under_the_rate_is_never_touched() -> None:
    rrl = limiter(rate=10)
    assert all(outcomes(rrl, "192.0.2.1", 1, now=100.0 + i * 0.1) == ["full"]
               for i in range(200))


def test_other_prefixes_have_their_own_buckets() -> None:
    rrl = limiter(rate=5)
    outcomes(rrl, "192.0.2.1", 50)
    assert outcomes(rrl, "192.0.2.77", 1) != ["full"]  # the same /24
    assert outcomes(rrl, "198.51.100.1", 5) == ["full"] * 5


def test_loopback_is_exempt_by_default() -> None:
    rrl = ResponseRateLimit(RateLimitSettings(responses_per_second=1))
    assert outcomes(rrl, "127.0.0.1", 50) == ["full"] * 50
    assert outcomes(rrl, "::1", 50) == ["full"] * 50


def test_the_bucket_table_is_bounded(monkeypatch) -> None:
    monkeypatch.setattr(ratelimit, "MAX_BUCKETS", 100)
    rrl = limiter()
    for i in range(1_000):
        outcomes(rrl, f"10.{i >> 8 & 255}.{i & 255}.1", 1)
    assert len(rrl._buckets) == 100


def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    bucket = TokenBucket(rate=2, burst=4)
    assert [bucket.take(0.0) for _ in range(5)] == [True] * 4 + [False]
    assert bucket.take(0.5) and not bucket.take(0.5)


# --- on the wire ------------------------------------------------------------------------------

LIMITED = """
zones:
  example.lan:
    records:
      www: {A: 192.0.2.1}
rate_limit: {responses_per_second: 5, exempt: []}
"""


def ask_udp(srv, source: str, count: int) -> list[str]:
    out = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        sock.settimeout(0.3)
        for i in range(count):
            query = dns.message.make_query("www.example.lan", "A", use_edns=False)
            query.id = i
            sock.sendto(query.to_wire(), (srv.host, srv.port))
            try:
                reply = dns.message.from_wire(sock.recv(4096))
            except TimeoutError:
                out.append("drop")
                continue
            out.append("tc" if reply.flags & dns.flags.TC else "full")
    return out


def test_a_udp_client_over_the_rate_is_limited_and_tcp_is_not(edgedns_server) -> None:
    srv = edgedns_server(LIMITED)
    seen = ask_udp(srv, "127.0.0.1", 12)
    assert seen[:5] == ["full"] * 5
    assert {"drop", "tc"} <= set(seen[5:])
    assert srv.query("www.example.lan", tcp=True).rcode() == dns.rcode.NOERROR
    assert ask_udp(srv, "127.0.1.1", 3) == ["full"] * 3  # another /24


def test_rate_limit_false_turns_it_off(edgedns_server) -> None:
    srv = edgedns_server(LIMITED.replace("rate_limit: {responses_per_second: 5, exempt: []}",
                                         "rate_limit: false"))
    assert srv.server.handler.rate_limit is None
    assert ask_udp(srv, "127.0.0.1", 12) == ["full"] * 12


@pytest.mark.parametrize(("key", "value"), [("responses_per_second", 0), ("slip", -1),
                                            ("ipv4_prefix", 33), ("ipv6_prefix", 200)])
def test_bad_rate_limit_values_are_rejected(tmp_path, key: str, value: int) -> None:
    from edgedns.config import ConfigError, load

    path = tmp_path / "edgedns.yaml"
    path.write_text(f"rate_limit: {{{key}: {value}}}\nzones: {{site.lan: {{}}}}\n")
    with pytest.raises(ConfigError) as caught:
        load(path)
    assert caught.value.path == f"rate_limit.{key}"

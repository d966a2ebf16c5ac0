"""Hostile and broken clients against a rendered service under its production server (`python -m app`).

Raw sockets on 127.0.0.1 play the clients a replica meets when nothing buffers in front of it: silent
sockets, slow and partial headers, slow, stalled and lying bodies, a 100 MiB header, thousands of idle
connections under a low open-files limit. Each test asserts what the client sees, and a checker that
opens a new connection for GET /health every 50 ms (as a kubelet does) shows that the replica kept
answering meanwhile. Timeouts are lowered so that the file runs in about a minute; the figures measured
are printed (`-s`).
"""

from __future__ import annotations

import json
import re
import resource
import select
import signal
import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from devtools.live import LiveService

pytestmark = pytest.mark.xdist_group("hostile")

IDLE_TIMEOUT = 1.0
HEADER_TIMEOUT = 1.5
BODY_TIMEOUT = 1.5
SETTINGS = {
    "IDLE_TIMEOUT_SECONDS": str(IDLE_TIMEOUT),
    "HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
    "BODY_TIMEOUT_SECONDS": str(BODY_TIMEOUT),
    "MAX_CONCURRENT_REQUESTS": "4",
    # every client here is 127.0.0.1, one caller: these tests are about the limit of the whole service
    # (one caller's share is tests/platform/test_access.py's)
    "MAX_CONCURRENT_REQUESTS_PER_CALLER": "4",
    "DRAIN_SECONDS": "0",
}
# How late a cut-off may come on a loaded machine (the timers themselves fire within milliseconds).
SLACK = 2.0
# The issue asks /health to answer within 50 ms while clients misbehave. The figures are printed; the
# assertion allows for this machine being shared (several test suites at once on two cores): the median
# must meet the 50 ms budget, the slowest answer must come within a second.
HEALTH_BUDGET = 0.05
HEALTH_WORST = 1.0
HEALTH_REQUEST = b"GET /health HTTP/1.1\r\nhost: probe\r\nconnection: close\r\n\r\n"
ECHO_HEAD = b"POST /v1/echo HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
ECHO_BODY = b'{"input": "hello"}'


# --- raw clients ------------------------------------------------------------------------------------


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def read_response(sock: socket.socket, timeout: float) -> tuple[bytes, float]:
    """What the server sends until it closes the connection (or `timeout`), and when it closed."""
    started = time.monotonic()
    data = b""
    sock.settimeout(timeout)
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return data, time.monotonic() - started


def read_one_response(sock: socket.socket, timeout: float = 5) -> bytes:
    """One whole response on a kept-alive connection: the head, then Content-Length bytes of body."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed before a whole head: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    declared = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    assert declared, f"no content-length in {head!r}"
    length = int(declared.group(1))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, f"closed before a whole body: {data!r}"
        body += chunk
    assert len(body) == length, "more than one response came back"
    return head + b"\r\n\r\n" + body


def trickle(sock: socket.socket, pieces: list[bytes], interval: float, give_up: float) -> tuple[bytes, float]:
    """Send `pieces` one per `interval`, watching for an answer; stop at the answer, a closed socket,
    or after `give_up` seconds. Returns (what came back, seconds from the first piece)."""
    started = time.monotonic()
    for piece in pieces:
        try:
            sock.sendall(piece)
        except (BrokenPipeError, ConnectionResetError):
            break
        readable, _, _ = select.select([sock], [], [], interval)
        if readable or time.monotonic() - started > give_up:
            break
    data, _ = read_response(sock, max(0.1, give_up - (time.monotonic() - started)))
    return data, time.monotonic() - started


def status_of(response: bytes) -> int | None:
    return int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/1.1 ") else None


def error_code(response: bytes) -> str:
    return json.loads(response.partition(b"\r\n\r\n")[2])["error"]["code"]


class HealthChecker:
    """GET /health on a new connection every `interval` seconds, in a thread, while a test misbehaves."""

    def __init__(self, port: int, interval: float = 0.05) -> None:
        self.port = port
        self.interval = interval
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> HealthChecker:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                with connect(self.port) as sock:
                    sock.sendall(HEALTH_REQUEST)
                    response, _ = read_response(sock, 5)
                if status_of(response) == 200:
                    self.latencies.append(time.monotonic() - started)
                else:
                    self.failures.append(repr(response[:80]))
            except OSError as error:
                self.failures.append(repr(error))
            self._stop.wait(self.interval)

    def assert_healthy(self, label: str) -> None:
        assert self.latencies, f"{label}: /health was never answered ({self.failures[:3]})"
        median, worst = statistics.median(self.latencies), max(self.latencies)
        print(
            f"{label}: /health answered {len(self.latencies)} times, median {median * 1000:.1f} ms, "
            f"slowest {worst * 1000:.1f} ms, {len(self.failures)} failures"
        )
        assert not self.failures, f"{label}: /health failed: {self.failures[:3]}"
        assert median <= HEALTH_BUDGET, f"{label}: median /health {median * 1000:.0f} ms"
        assert worst <= HEALTH_WORST, f"{label}: slowest /health {worst * 1000:.0f} ms"


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


# --- the service ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared(rendered, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveService]:
    running = LiveService(rendered("default"), tmp_path_factory.mktemp("hostile-logs"), environment=SETTINGS)
    yield running
    running.stop()


@pytest.fixture
def live(rendered, tmp_path: Path) -> Iterator[Callable[..., LiveService]]:
    started: list[LiveService] = []

    def start(*, wrapper: tuple[str, ...] = (), **environment: str) -> LiveService:
        started.append(
            LiveService(
                rendered("default"), tmp_path, wrapper=wrapper, environment={**SETTINGS, **environment}
            )
        )
        return started[-1]

    yield start
    for each in started:
        each.stop()


# --- slow and silent clients ------------------------------------------------------------------------


def test_silent_sockets_are_closed_after_the_idle_timeout(shared: LiveService) -> None:
    with HealthChecker(shared.port) as checker:
        sockets = [connect(shared.port) for _ in range(50)]
        with ThreadPoolExecutor(10) as pool:
            outcomes = list(pool.map(lambda sock: read_response(sock, IDLE_TIMEOUT + SLACK + 2), sockets))
        for sock in sockets:
            sock.close()
    assert all(data == b"" for data, _ in outcomes)  # closed without a word: nothing was asked
    slowest = max(elapsed for _, elapsed in outcomes)
    print(f"50 silent sockets closed after {slowest:.2f} s at most (IDLE_TIMEOUT_SECONDS={IDLE_TIMEOUT})")
    assert IDLE_TIMEOUT * 0.9 <= slowest <= IDLE_TIMEOUT + SLACK
    checker.assert_healthy("silent sockets")


def test_blank_lines_are_no_request(shared: LiveService) -> None:
    """Line breaks before a request line are allowed (and skipped); they do not keep a socket open."""
    sock = connect(shared.port)
    sock.sendall(b"\r\n\r\n")
    response, elapsed = read_response(sock, IDLE_TIMEOUT + SLACK + 2)
    sock.close()
    assert response == b""
    assert elapsed <= IDLE_TIMEOUT + SLACK


@pytest.mark.parametrize(
    "pieces",
    [
        pytest.param([b"GET /health HTTP/1.1\r\nhost: x\r\n"] + [b"x-slow: 1\r\n"] * 40, id="one header line at a time"),
        pytest.param([b"GET /hea"] + [b""] * 40, id="a partial request line, then silence"),
        pytest.param([bytes([byte]) for byte in b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n"], id="a byte at a time"),
    ],
)  # fmt: skip
def test_slow_headers_get_408_after_the_header_timeout(shared: LiveService, pieces: list[bytes]) -> None:
    """Each client would take 8 s or more to finish its headers; it is answered 408 at HEADER_TIMEOUT."""
    with HealthChecker(shared.port) as checker, ThreadPoolExecutor(8) as pool:
        outcomes = list(
            pool.map(
                lambda _: trickle(connect(shared.port), pieces, 0.2, HEADER_TIMEOUT + SLACK + 3), range(8)
            )
        )
    for response, elapsed in outcomes:
        assert status_of(response) == 408, response[:200]
        assert error_code(response) == "header_timeout"
        assert b"connection: close" in response
        assert HEADER_TIMEOUT * 0.9 <= elapsed <= HEADER_TIMEOUT + SLACK
    print(f"8 slow-header clients answered 408 after {max(e for _, e in outcomes):.2f} s at most")
    checker.assert_healthy("slow headers")


# --- slow, stalled and lying bodies -----------------------------------------------------------------

TRICKLED = ECHO_HEAD + b"content-length: 200\r\n\r\n"
CHUNKED = ECHO_HEAD + b"transfer-encoding: chunked\r\n\r\n"
BODIES = {
    # a byte every 0.2 s: 40 s for the whole body
    "trickled body": [TRICKLED] + [b" "] * 200,
    # Content-Length larger than what is sent, then silence
    "lying Content-Length": [ECHO_HEAD + b"content-length: 1000\r\n\r\n" + ECHO_BODY] + [b""] * 200,
    # a chunk size, then silence
    "a chunk size, then silence": [CHUNKED + b"400\r\n"] + [b""] * 200,
}


def test_slow_and_stalled_bodies_get_408_and_free_their_slots(shared: LiveService) -> None:
    """Four bodies hold all four slots (MAX_CONCURRENT_REQUESTS=4); while they do, business requests get 503
    and the probes (and their aliases) keep answering; then each body is ended with 408, long before
    REQUEST_TIMEOUT_SECONDS (60), and the slots are free again."""
    clients = [*BODIES.values(), BODIES["trickled body"]]
    with HealthChecker(shared.port) as checker, ThreadPoolExecutor(4) as pool:
        futures = [
            pool.submit(trickle, connect(shared.port), pieces, 0.2, BODY_TIMEOUT + SLACK + 3)
            for pieces in clients
        ]
        time.sleep(BODY_TIMEOUT / 3)  # the four are in, waiting for their bodies
        saturated = httpx.post(f"{shared.url}/v1/echo", json={"input": "x"}, timeout=5)
        aliases = {
            path: httpx.get(f"{shared.url}{path}", timeout=5).status_code
            for path in ("/health/", "//health", "/readyz/", "/v1/models/", "/v1/metadata/")
        }
        outcomes = [future.result() for future in futures]
    assert saturated.status_code == 503, saturated.text
    assert aliases == dict.fromkeys(aliases, 200), aliases
    for response, elapsed in outcomes:
        assert status_of(response) == 408, response[:300]
        assert error_code(response) == "body_timeout"
        assert b"connection: close" in response
        assert elapsed <= BODY_TIMEOUT + SLACK
    print(
        f"4 slow bodies answered 408 after {max(e for _, e in outcomes):.2f} s at most (REQUEST_TIMEOUT 60 s)"
    )
    assert httpx.post(f"{shared.url}/v1/echo", json={"input": "x"}, timeout=5).status_code == 200
    checker.assert_healthy("slow bodies")
    # each access line says why the request ended: 4 lines with the 408 and outcome body_timeout (and only
    # these four in a log shared with the other tests)
    log = shared.wait_for_log('"outcome":"body_timeout"')
    deadline = time.monotonic() + 10
    while (count := log.count('"outcome":"body_timeout"')) < len(clients) and time.monotonic() < deadline:
        time.sleep(0.1)
        log = shared.log()
    assert count == len(clients)
    assert log.count('"status":408') == log.count('"outcome":"body_timeout"')


def test_a_body_at_a_fair_pace_is_not_cut(shared: LiveService) -> None:
    """Pauses shorter than BODY_TIMEOUT_SECONDS, with enough bytes between them, are a slow network."""
    body = b'{"input": "' + b"x" * 4500 + b'"}'
    pieces = [ECHO_HEAD + b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body)]
    pieces += [body[start : start + 1500] for start in range(0, len(body), 1500)]
    response, elapsed = trickle(connect(shared.port), pieces, BODY_TIMEOUT / 2, 15)
    assert status_of(response) == 200, response[:300]
    print(f"a 4.5 KB body sent over {elapsed:.1f} s in 1.5 KB pieces was answered 200")


def test_a_body_trickled_after_its_answer_is_not_kept_forever(shared: LiveService) -> None:
    """/health answers without reading the body; the rest of the body is read and dropped for at most
    IDLE_TIMEOUT_SECONDS, however the client keeps trickling it."""
    sock = connect(shared.port)
    sock.sendall(b"GET /health HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\n")
    assert status_of(sock.recv(4096)) == 200
    started = time.monotonic()
    closed = False
    while not closed and time.monotonic() - started < IDLE_TIMEOUT + SLACK + 3:
        try:
            sock.sendall(b"x")
        except (BrokenPipeError, ConnectionResetError):
            break
        readable, _, _ = select.select([sock], [], [], 0.2)
        if readable:
            try:
                closed = sock.recv(4096) == b""
            except ConnectionResetError:
                closed = True
    elapsed = time.monotonic() - started
    sock.close()
    print(f"a body trickled after its answer: the connection was closed after {elapsed:.2f} s")
    assert IDLE_TIMEOUT * 0.9 <= elapsed <= IDLE_TIMEOUT + SLACK


# --- oversized headers ------------------------------------------------------------------------------


def send_huge_header(port: int, size: int) -> tuple[int, bytes]:
    """Try to send a `size`-byte header; return (bytes sent before the server stopped it, its answer)."""
    sock = connect(port)
    sock.sendall(b"GET /health HTTP/1.1\r\nhost: x\r\nx-huge: ")
    sent, piece = 0, b"a" * 65536
    try:
        while sent < size:
            sock.sendall(piece)
            sent += len(piece)
    except (BrokenPipeError, ConnectionResetError):
        pass
    response, _ = read_response(sock, 5)
    sock.close()
    return sent, response


def test_100_mib_headers_are_refused_while_they_arrive(shared: LiveService) -> None:
    """Four clients each try to send 100 MiB headers, again and again for two seconds."""
    pid = shared.process.pid
    baseline = rss_kib(pid)
    peak = baseline
    until = time.monotonic() + 2

    def sample() -> None:
        nonlocal peak
        while time.monotonic() < until + 0.5:
            peak = max(peak, rss_kib(pid))
            time.sleep(0.01)

    def attack() -> list[tuple[int, bytes]]:
        outcomes = [send_huge_header(shared.port, 100 << 20)]
        while time.monotonic() < until:
            outcomes.append(send_huge_header(shared.port, 100 << 20))
        return outcomes

    sampler = threading.Thread(target=sample)
    sampler.start()
    with HealthChecker(shared.port) as checker, ThreadPoolExecutor(4) as pool:
        outcomes = [outcome for each in pool.map(lambda _: attack(), range(4)) for outcome in each]
    sampler.join()
    for sent, response in outcomes:
        assert sent < 8 << 20, f"the server read {sent} bytes of header before refusing it"
        # the 431 is written before the close; a reset may overtake it on a client still sending
        assert response == b"" or status_of(response) == 431, response[:200]
    answered = sum(status_of(response) == 431 for _, response in outcomes)
    growth = (peak - baseline) / 1024
    print(
        f"{len(outcomes)} attempts at a 100 MiB header: cut off after {max(s for s, _ in outcomes) >> 10} KiB "
        f"at most, {answered} read their 431; server RSS {baseline / 1024:.1f} MiB, peak +{growth:.1f} MiB"
    )
    assert answered >= 1
    assert growth < 8, f"the server grew by {growth:.1f} MiB"
    checker.assert_healthy("100 MiB headers")


# --- open files ----------------------------------------------------------------------------------------


def test_the_soft_open_files_limit_is_raised_to_the_hard_limit_and_logged(live) -> None:
    service = live(wrapper=("prlimit", "--nofile=256:2048"))
    assert resource.prlimit(service.process.pid, resource.RLIMIT_NOFILE) == (2048, 2048)
    service.wait_for_log("open-files limit 2048 (was 256)")


def test_2000_idle_sockets_under_a_low_limit_degrade_without_failing_open_connections(live) -> None:
    """With 512 files at most, the service holds what it can, refuses the rest with 503, keeps serving the
    connections it has, and takes new ones again once the idle sockets time out."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2200:
        pytest.skip(f"this test opens 2,000 sockets; the hard open-files limit here is {hard}")
    if soft != resource.RLIM_INFINITY and soft < 2200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (2200, hard))
    service = live(wrapper=("prlimit", "--nofile=512:512"), IDLE_TIMEOUT_SECONDS="3")
    service.wait_for_log("open-files limit 512 (was 512): at most 448 client connections")
    kept = connect(service.port)  # a gateway's pooled connection, opened before the flood
    keep_alive = b"GET /health HTTP/1.1\r\nhost: gateway\r\n\r\n"

    def ask_on_kept() -> float:
        started = time.monotonic()
        kept.sendall(keep_alive)
        data = b""
        while not data.endswith(b'{"status":"pass"}'):
            data += kept.recv(4096)
        assert status_of(data) == 200
        return time.monotonic() - started

    ask_on_kept()
    flood: list[socket.socket] = []
    try:
        started = time.monotonic()
        for _ in range(2000):
            flood.append(socket.create_connection(("127.0.0.1", service.port), timeout=5))
        opened = time.monotonic() - started
        latencies = [ask_on_kept() for _ in range(20)]
        refused = 0
        for sock in flood[-200:]:  # the last ones came after the limit
            response, _ = read_response(sock, 0.5)
            refused += status_of(response) == 503
        print(
            f"2,000 sockets opened in {opened:.2f} s; the kept connection answered 20 times, slowest "
            f"{max(latencies) * 1000:.1f} ms; {refused} of the last 200 were refused with 503"
        )
        assert refused >= 150
        assert max(latencies) <= HEALTH_WORST
        assert service.process.poll() is None
        assert (
            service.wait_for_log("refused a connection").count("refused a connection") == 1
        )  # one line a minute, not one a socket
    finally:
        for sock in flood:
            sock.close()
    kept.close()
    assert httpx.get(f"{service.url}/health", timeout=5).status_code == 200


# --- probes and shutdown --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/health/", "//health", "/readyz/", "/v1/models/", "/v1/metadata//"])
def test_probe_aliases_get_the_probe_answer(shared: LiveService, path: str) -> None:
    canonical = "/" + "/".join(part for part in path.split("/") if part)
    response = httpx.get(f"{shared.url}{path}", timeout=5)
    assert response.status_code == 200
    assert response.content == httpx.get(f"{shared.url}{canonical}", timeout=5).content


def test_responses_during_the_drain_close_the_connection(live) -> None:
    service = live(DRAIN_SECONDS="5")
    sock = connect(service.port)
    sock.sendall(b"GET /health HTTP/1.1\r\nhost: gateway\r\n\r\n")
    before = read_one_response(sock)  # the whole of it: one recv may return the head alone
    assert status_of(before) == 200
    assert b"connection: close" not in before.lower()
    service.signal(signal.SIGTERM)
    time.sleep(0.3)
    sock.sendall(ECHO_HEAD + b"content-length: %d\r\n\r\n" % len(ECHO_BODY) + ECHO_BODY)
    during, _ = read_response(sock, 5)  # read until the server closes it
    assert status_of(during) == 200, during[:300]
    assert b"connection: close" in during.lower()
    sock.close()


# --- strict and bounded JSON ------------------------------------------------------------------------


@pytest.mark.parametrize("repeat", ['"2"', "2.5", "true", '"true"'])
def test_a_string_a_fraction_or_a_boolean_is_never_an_integer(shared: LiveService, repeat: str) -> None:
    response = httpx.post(
        f"{shared.url}/v1/echo",
        content=b'{"input": 7, "repeat": %s}' % repeat.encode(),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400, response.text
    message = response.json()["error"]["message"]
    assert "`input`" in message  # every invalid field, still
    assert "`repeat`" in message


def test_a_number_without_a_fraction_is_an_integer_as_json_schema_says(shared: LiveService) -> None:
    response = httpx.post(f"{shared.url}/v1/echo", json={"input": "x", "repeat": 2.0})
    assert response.status_code == 200, response.text
    assert response.json()["output"] == "x x"


def test_an_error_about_thousands_of_unknown_keys_stays_small(shared: LiveService) -> None:
    keys = b", ".join(b'"key-%d-%s": 1' % (number, b"k" * 200) for number in range(4000))
    body = b'{"input": "x", ' + keys + b"}"
    started = time.monotonic()
    response = httpx.post(f"{shared.url}/v1/echo", content=body, headers={"content-type": "application/json"})
    elapsed = time.monotonic() - started
    assert response.status_code == 400
    assert len(response.content) < 8192, len(response.content)
    assert "and more" in response.json()["error"]["message"]
    print(
        f"a {len(body) / 1e6:.1f} MB body of unknown keys: a {len(response.content)} B error in {elapsed * 1000:.0f} ms"
    )

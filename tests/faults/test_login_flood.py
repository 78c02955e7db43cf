"""One client guessing passwords through the admin's sign-in form, staying under nginx's general
per-client limits, cannot slow the site for anyone else: its sign-in POSTs are limited per
client address by nginx (429 with a page), so web hashes only a handful of its passwords, and
another visitor's pages stay as fast as when the site is idle (the same visitor, warmed up,
on the same connection, just before the flood)."""

import statistics
import threading
import time

import requests

from tests.harness.load import Threads
from tests.harness.measurements import record
from tests.stack.support import SITE_HOST, Client, Stack, boot, python_in_web

ATTACKER_CONNECTIONS = 20
# Under the general per-client limit (NGINX_RATE_LIMIT, 20 per second), as the flood that used
# to take 15 password checks a second was.
ATTACKER_RATE_PER_S = 18
FLOOD_S = 12
VISITOR_SAMPLES = 120
# Requests the visitor sends before the idle sample counts: the first ones after boot are slow
# (workers' first requests, caches), which made a cold baseline look twice as slow as a warm one.
WARM_UP_REQUESTS = 40
# The two clients stand behind the load balancer at addresses of their own (nginx believes the
# host's X-Forwarded-For: it is where the balancer stands, stack_env), so each has its own
# per-client limits; the visitor stays under the general one (NGINX_RATE_LIMIT, 20 per second).
VISITOR_ADDRESS, ATTACKER_ADDRESS = "203.0.113.7", "203.0.113.66"
VISITOR_PAUSE_S = 0.06
# Other visitors' pages: their p95 during the flood at most twice the idle one (the issue's
# rule), with 10 ms of slack for this shared machine's noise on a fast page.
NOISE_S = 0.010
# The CPU time of one password check in web, the median of five (Django's configured hasher).
HASH_CPU_PROGRAM = """
import statistics, time
from django.contrib.auth.hashers import check_password, make_password
hashed = make_password("a password")
times = []
for _ in range(5):
    started = time.process_time()
    check_password("a guess", hashed)
    times.append(time.process_time() - started)
print(statistics.median(times))
"""
# More than nginx's sign-in burst (NGINX_LOGIN_BURST, 5 by default).
REFUSAL_TRIES = 20


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[-1]


def visit(session: requests.Session, stack: Stack, count: int) -> list[float]:
    """`count` page loads by one visitor over its kept-alive connection, timed."""
    times = []
    for _ in range(count):
        asked = time.monotonic()
        response = session.get(
            stack.url("/"),
            headers={"Host": SITE_HOST, "X-Forwarded-Proto": "https",
                     "X-Forwarded-For": VISITOR_ADDRESS},
            timeout=15,
        )  # fmt: skip
        assert response.status_code == 200
        times.append(time.monotonic() - asked)
        time.sleep(VISITOR_PAUSE_S)
    return times


def test_a_password_flood_from_one_client_slows_no_one_else(compose_project, free_port):
    stack = boot(compose_project, free_port())
    stack.create_superuser()
    # The same visitor, on the same connection, for the baseline and during the flood.
    visitor = requests.Session()
    visit(visitor, stack, WARM_UP_REQUESTS)
    idle = visit(visitor, stack, VISITOR_SAMPLES)

    attacker = Client(stack)
    attacker.get("/admin/login/", headers={"X-Forwarded-For": ATTACKER_ADDRESS})
    token = attacker.cookies["csrftoken"]
    answers: list[int | str] = []
    pause = ATTACKER_CONNECTIONS / ATTACKER_RATE_PER_S

    def guess(stop: threading.Event) -> None:
        session = requests.Session()
        while not stop.is_set():
            sent = time.monotonic()
            try:
                status = session.post(
                    stack.url("/admin/login/"),
                    data={"csrfmiddlewaretoken": token, "username": "ops", "password": "wrong"},
                    headers={"Host": SITE_HOST, "X-Forwarded-Proto": "https",
                             "Origin": f"https://{SITE_HOST}", "Cookie": f"csrftoken={token}",
                             "X-Forwarded-For": ATTACKER_ADDRESS},
                    timeout=15, allow_redirects=False,
                ).status_code  # fmt: skip
            except requests.RequestException as error:
                status = type(error).__name__
            answers.append(status)
            time.sleep(max(0.0, pause - (time.monotonic() - sent)))

    started = time.monotonic()
    with Threads(*[guess] * ATTACKER_CONNECTIONS):
        time.sleep(1)
        flooded = visit(visitor, stack, VISITOR_SAMPLES)
        time.sleep(max(0.0, FLOOD_S - (time.monotonic() - started)))

    # Reached web: a wrong password re-renders the form (200, after a hash); a locked-out pair
    # gets django-axes' 429 (no hash). Everything else nginx refused itself.
    reached_web = stack.nginx_lines(
        lambda line: line["path"] == "/admin/login/" and line["method"] == "POST"
        and line["upstream_status"] != "",
    )  # fmt: skip
    hashed = [line for line in reached_web if line["upstream_status"] == "200"]
    failure_limit = int(python_in_web(
        stack, "from django.conf import settings; print(settings.AXES_FAILURE_LIMIT)"
    ))  # fmt: skip
    # What a hash costs web's CPU (the reason for the limits), in the image as it runs.
    check_cpu_s = float(python_in_web(stack, HASH_CPU_PROGRAM))
    record("password check", {"cpu_s": round(check_cpu_s, 3)})
    record("login flood", {
        "attempts": len(answers), "refused_429": answers.count(429),
        "reached_web": len(reached_web), "password_checks": len(hashed),
        "visitor_p95_idle_ms": round(p95(idle) * 1000, 1),
        "visitor_p95_flood_ms": round(p95(flooded) * 1000, 1),
    })  # fmt: skip
    assert answers.count(429) > 0.9 * len(answers), set(answers)
    assert len(hashed) <= failure_limit
    assert {line["upstream_status"] for line in reached_web} <= {"200", "429"}
    assert p95(flooded) <= max(2 * p95(idle), p95(idle) + NOISE_S)
    # The page nginx answers with: the zone refills after the flood, so a few posts in a row
    # (its burst) come first.
    for _ in range(REFUSAL_TRIES):
        page = requests.post(
            stack.url("/admin/login/"), data={"username": "ops", "password": "wrong"},
            headers={"Host": SITE_HOST, "X-Forwarded-Proto": "https",
                     "X-Forwarded-For": ATTACKER_ADDRESS}, timeout=15,
        )  # fmt: skip
        if page.status_code == 429:
            break
    assert page.status_code == 429
    assert "Too many requests" in page.text

"""tests/pycheck.py - the ok/FAIL lines of the Python end-to-end tests.

    sys.path.insert(0, <the tests directory>); import pycheck
    pycheck.check(cond, "what was checked: got X, want Y")
    ...
    sys.exit(1 if pycheck.failures else 0)
"""
import sys

failures = 0


def check(cond, msg):
    """One line, "ok: msg" or "FAIL: msg"; counts failures; returns cond."""
    global failures
    print(("ok: " if cond else "FAIL: ") + msg, flush=True)
    if not cond:
        failures += 1
    return cond


def die(msg):
    """A failure after which the test cannot go on."""
    global failures
    print("FAIL: " + msg, flush=True)
    failures += 1
    sys.exit(1)

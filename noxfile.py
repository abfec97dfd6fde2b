"""Developer sessions. `nox` runs lint, typecheck and tests; `nox -s bench` runs the benchmarks."""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

PYTHON = "3.11"
SOURCES = ["llmux", "tests", "benchmarks", "noxfile.py"]


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff: formatting and lint rules."""
    session.install("ruff>=0.5")
    session.run("ruff", "format", "--check", *SOURCES)
    session.run("ruff", "check", *SOURCES)


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the package, the tests and the benchmarks."""
    session.install("-e", ".[test,dev]")
    session.run("mypy", "--strict", "llmux", "tests", "benchmarks")


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The test suite (warnings are errors)."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Direct upstream vs a bare aiohttp proxy vs llmux, side by side (needs wrk)."""
    session.install("-e", ".")
    session.run("python", "-m", "benchmarks.run", *session.posargs)

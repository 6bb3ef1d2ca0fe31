"""``require`` (conftest): a missing external tool skips a test, or fails it under ``FASTGW_REQUIRE_ALL=1``."""

from __future__ import annotations

import pytest

from tests.conftest import REQUIRE_ALL, require


def test_require_passes_when_the_condition_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(REQUIRE_ALL, "1")
    require(True, "present")


def test_require_skips_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(REQUIRE_ALL, raising=False)
    with pytest.raises(pytest.skip.Exception, match="tool missing"):
        require(False, "tool missing")


def test_require_fails_under_require_all(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(REQUIRE_ALL, "1")
    with pytest.raises(pytest.fail.Exception, match="tool missing"):
        require(False, "tool missing")

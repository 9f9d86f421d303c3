"""digits.limits: the memory limit untrusted sizes and configurations are held to."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from digits import limits
from nets.errors import ConfigError


def test_the_limit_is_a_share_of_available_memory(monkeypatch):
    monkeypatch.delenv("DIGITS_MEMORY_LIMIT", raising=False)
    monkeypatch.setattr(limits, "available_memory", lambda: 10 * 2**30)
    assert limits.memory_limit() == int(0.8 * 10 * 2**30)


def test_available_memory_is_plausible():
    assert 2**20 < limits.available_memory() < 2**50


@pytest.mark.parametrize("text, expected", [("2G", 2 * 2**30), ("500M", 500 * 2**20),
                                            ("1.5K", 1536), ("123", 123), ("4GiB", 4 * 2**30),
                                            ("1t", 2**40)])
def test_the_environment_variable_sets_it(monkeypatch, text, expected):
    monkeypatch.setenv("DIGITS_MEMORY_LIMIT", text)
    assert limits.memory_limit() == expected


@pytest.mark.parametrize("text", ["lots", "-1G", "2X", "1e9"])
def test_a_bad_environment_variable_is_one_line(monkeypatch, text):
    monkeypatch.setenv("DIGITS_MEMORY_LIMIT", text)
    with pytest.raises(ConfigError, match="DIGITS_MEMORY_LIMIT"):
        limits.memory_limit()


def test_check_memory_names_what_and_the_limit(monkeypatch):
    monkeypatch.setenv("DIGITS_MEMORY_LIMIT", "1M")
    limits.check_memory(2**20, "this", "no hint")
    with pytest.raises(ConfigError, match=r"^the thing needs about 2.0 MiB, more than the "
                       r"1.0 MiB .*; use less$"):
        limits.check_memory(2 * 2**20, "the thing", "use less")


@given(st.integers(0, 2**60))
def test_format_bytes_is_short_and_exact_enough(n):
    text = limits.format_bytes(n)
    number, unit = text.split()
    scale = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}[unit]
    assert abs(float(number) * scale - n) <= 0.05 * scale + 0.5

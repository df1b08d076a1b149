"""``read_bounded_text``: a bounded file read as UTF-8 text, each refusal one error of the caller's
class and wording."""

from __future__ import annotations

import pytest

from retry_pipelines.domain.json_limits import read_bounded_text


class Refused(Exception):
    pass


def _read(path, max_bytes=16, **kwargs):
    return read_bounded_text(
        path, max_bytes, error=Refused, consequence="nothing was done", **kwargs
    )


def test_the_text_is_returned_with_a_byte_order_mark_dropped(tmp_path):
    path = tmp_path / "a.csv"
    path.write_bytes(b"\xef\xbb\xbfcaf\xc3\xa9\n")
    assert _read(path) == "caf\u00e9\n"
    path.write_bytes(b"plain")
    assert _read(path) == "plain"


def test_a_file_too_large_is_refused_with_the_consequence(tmp_path):
    path = tmp_path / "big.csv"
    path.write_bytes(b"x" * 17)
    with pytest.raises(Refused) as raised:
        _read(path)
    assert str(raised.value) == f"{path} is larger than 16 bytes; nothing was done"
    assert raised.value.__cause__ is None
    assert raised.value.__suppress_context__
    path.write_bytes(b"x" * 16)
    assert _read(path) == "x" * 16


def test_text_that_is_not_utf8_is_refused_in_the_callers_wording(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes(b"a" * 1500 + b"\xe9")
    with pytest.raises(Refused) as raised:
        _read(path, max_bytes=2000)
    assert str(raised.value) == f"{path} is not UTF-8 text (byte 1500)"
    template = "{name} is not UTF-8 text (byte {byte:,}); save it as UTF-8; {consequence}"
    with pytest.raises(Refused) as raised:
        _read(path, max_bytes=2000, name="'latin.csv'", not_utf8=template)
    expected = "'latin.csv' is not UTF-8 text (byte 1,500); save it as UTF-8; nothing was done"
    assert str(raised.value) == expected


def test_a_missing_file_or_a_directory_is_refused(tmp_path):
    missing = tmp_path / "missing.csv"
    with pytest.raises(Refused) as raised:
        _read(missing)
    assert str(raised.value) == f"cannot read {missing}: No such file or directory"
    with pytest.raises(Refused, match="cannot read 'shown': No such file"):
        _read(missing, name="'shown'")
    with pytest.raises(Refused) as raised:
        _read(tmp_path)
    assert str(raised.value) == f"{tmp_path} is not a regular file; nothing was done"

"""The phrase bank data files: the shipped ones load, a malformed one is refused clearly."""

from __future__ import annotations

from pathlib import Path

import pytest

from classifier.errors import CallsiftError
from training.simulator import phrasebank
from training.simulator.phrasebank import PhraseBankError

SHIPPED = phrasebank.DATA_DIR / "phrases_id.toml"


def test_shipped_banks_load_once() -> None:
    for language in phrasebank.LANGUAGES:
        bank = phrasebank.load(language)
        assert bank.language == language and bank.caller and bank.call_taker
        assert phrasebank.load(language) is bank


def test_unknown_language_is_refused() -> None:
    with pytest.raises(PhraseBankError, match="no phrase bank for language 'jv'"):
        phrasebank.load("jv")


def _broken(tmp_path: Path, old: str, new: str) -> Path:
    text = SHIPPED.read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "phrases_id.toml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("old", "new", "key", "problem"),
    [
        ('"ada kebakaran {loc}",', '"ada kebakaran {lokasi}",', "caller.report.fire",
         "unknown placeholder {lokasi}"),
        ('"ada kebakaran {loc}",', '"ada kebakaran {loc",', "caller.report.fire",
         "unbalanced braces"),
        ('[caller_honorifics]\nadult_male = [', '[caller_honorifics]\nadult_male = [] \nx = [',
         "caller_honorifics.adult_male", "empty bank"),
        ('[caller_honorifics]\nadult_male = [', '[caller_honorifics]\nadult_male = 3\nx = [',
         "caller_honorifics.adult_male", "must be a list of strings, got int 3"),
        ('"report.fire" = [', '"report.blaze" = [', "caller", "missing bank(s) report.fire"),
        ('kind = "int", lo = 1, hi = 150', 'kind = "int", lo = 150, hi = 1', "slots.num",
         "lo <= hi"),
        ("[ghost]\n", "[ghosts]\n", "ghost", "missing"),
        ("[ghost]\n", "[ghost\n", "", "not valid TOML"),
    ],
)  # fmt: skip
def test_malformed_bank_names_file_key_and_problem(
    tmp_path: Path, old: str, new: str, key: str, problem: str
) -> None:
    path = _broken(tmp_path, old, new)
    with pytest.raises(PhraseBankError) as info:
        phrasebank.read(path, language="id")
    message = str(info.value)
    assert message.startswith(f"{path}: {key}"), message
    assert problem in message, message
    assert isinstance(info.value, CallsiftError)


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PhraseBankError, match="cannot read"):
        phrasebank.read(tmp_path / "nope.toml", language="id")

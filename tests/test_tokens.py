"""Signed references (mailbot/tokens.py): made by mailbot, checked on the
way back, useless to anyone who changes them or moves them elsewhere."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from mailbot.errors import ConfigError
from mailbot.tokens import Reference, Tokens, load_key, subject_tag

KEY = b"0123456789abcdef0123456789abcdef"


def test_a_school_reference_names_its_school() -> None:
    tokens = Tokens(KEY)
    token = tokens.for_school(12)
    assert token.startswith("s12-")
    assert tokens.verify(token, "anyone@school.example.org") == Reference(school_id=12)


def test_a_school_reference_cannot_be_moved_to_another_school() -> None:
    tokens = Tokens(KEY)
    mac = tokens.for_school(12).split("-")[1]
    assert tokens.verify(f"s13-{mac}", "head@school.example.org") is None


def test_a_changed_letter_or_another_key_fails() -> None:
    token = Tokens(KEY).for_school(7)
    changed = token[:-1] + ("a" if token[-1] != "a" else "b")
    assert Tokens(KEY).verify(changed, "x@y.org") is None
    assert Tokens(b"another key, also thirty-two byte").verify(token, "x@y.org") is None


def test_a_person_reference_holds_only_for_its_address() -> None:
    tokens = Tokens(KEY)
    token = tokens.for_person("Coordinator@DSA.example.org")
    assert tokens.verify(token, "coordinator@dsa.example.org") == \
        Reference(address="coordinator@dsa.example.org")
    assert tokens.verify(token, "intruder@dsa.example.org") is None


def test_references_are_found_in_subjects_ids_and_plus_addresses() -> None:
    tokens = Tokens(KEY)
    school, person = tokens.for_school(3), tokens.for_person("a@b.org")
    forged = "s4-" + "a" * 10
    found = tokens.found([
        f"Re: Your comment {subject_tag(school)}",
        f"<{school}.0f3a@dsa.example.org> <{forged}.1@dsa.example.org>",
        f"programme+{person}@dsa.example.org",
    ], "a@b.org")
    assert found == [Reference(school_id=3), Reference(address="a@b.org")]


def test_a_reference_inside_a_longer_word_is_not_taken() -> None:
    tokens = Tokens(KEY)
    token = tokens.for_school(3)
    assert tokens.found([f"x{token}", f"{token}9"], "a@b.org") == []


def test_the_key_is_made_once_and_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "data" / "mailbot.key"
    first = load_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_key(path) == first
    assert len(first) == 64


def test_a_key_others_can_read_is_used_with_a_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "mailbot.key"
    path.write_text("k" * 40 + "\n")
    path.chmod(0o644)
    assert load_key(path) == b"k" * 40
    assert "others may read the signing key" in caplog.text


def test_a_short_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "mailbot.key"
    path.write_text("short\n")
    path.chmod(0o600)
    with pytest.raises(ConfigError, match="too short"):
        load_key(path)

"""What the staff digest shows of trouble: work that keeps failing, and
long sections cut to a readable length."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import Harness, example_config, make_mail, sample

from mailbot import digest, sweep
from mailbot.storage import journal_of
from mailbot.store import Store


@pytest.fixture
def bot(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(example_config(tmp_path), "2027-01-12 10:00")
    yield harness
    harness.close()


def section(bot: Harness, title: str) -> list[str]:
    context = digest.context(bot.bot.store, bot.clock.now(), None)
    (found,) = [s for s in context["sections"] if s["title"].startswith(title)]
    return list(found["items"])


def test_a_clusters_sweep_that_keeps_failing_is_in_the_digest_until_it_works(
        bot: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    # Guards a gap found so: a template broken in a branch stopped the
    # reminders of a cluster at every sweep, and only the log said so.
    bot.deliver(sample("01-nomination-list"))
    bot.cycle()
    calls: list[Any] = []

    def broken(*args: Any) -> None:
        calls.append(args)
        raise RuntimeError("templates/reminder.txt: the first line it "
                           "writes must be 'Subject: ...'")

    monkeypatch.setattr(sweep, "remind", broken)
    bot.at("2027-01-12 11:00")
    bot.cycle()
    bot.at("2027-01-12 12:00")
    bot.cycle()
    assert len(calls) == 2
    said = ("reminders and validator for Glenbrae Cluster (#1): failing "
            "since 12 January 2027 at 11:00: RuntimeError: "
            "templates/reminder.txt: the first line it writes must be "
            "'Subject: ...'")
    assert section(bot, "Work that keeps failing") == [said]

    monkeypatch.undo()
    bot.cycle()
    assert section(bot, "Work that keeps failing") == []


def test_a_long_section_is_cut_with_a_line_saying_where_the_rest_are(
        bot: Harness) -> None:
    count = digest.MAX_ITEMS + 7
    for n in range(count):
        bot.deliver(make_mail(f"stranger{n}@elsewhere.example.com",
                              f"Hello {n}", "Who are you?"))
    bot.cycle()
    items = section(bot, "Mail set aside")
    assert len(items) == digest.MAX_ITEMS + 1
    assert "stranger0@" in items[0]
    assert items[-1] == ("... and 7 more: `mailbot set-aside list` on the "
                         "server lists them all")


def test_a_school_whose_cluster_is_gone_is_shown_not_a_crash(
        bot: Harness) -> None:
    # Guards a bug found so: a record edited by hand, its cluster removed
    # and its schools left, made `digest --preview` fail with a KeyError.
    bot.deliver(sample("01-nomination-list"))
    bot.cycle()
    bot.deliver(sample("04-comment-reply"))
    bot.cycle()
    bot.close()
    path = bot.config.store_path
    with open(journal_of(path), "ab") as journal:
        journal.write(b'{"c":[["clusters.00000","1",null]]}\n')
    store = Store(path)
    context = digest.context(store, bot.clock.now(), None)
    [comment] = [s["items"] for s in context["sections"]
                 if s["title"] == "Comments received"][0]
    assert comment.startswith(
        "Glenbrae Primary School (cluster #1, not in the record): ")

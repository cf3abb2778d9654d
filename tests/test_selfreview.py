"""Self-review results from sheets and mail, and comments by criterion."""

from __future__ import annotations

import codecs
import io
from pathlib import Path

import openpyxl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailbot import tagging
from mailbot.errors import ConfigError, SetAside
from mailbot.mail import Attachment, parse
from mailbot.quoting import new_text
from mailbot.selfreview import (
    OWN,
    Counts,
    Criterion,
    Reading,
    Results,
    Score,
    criterion,
    from_attachment,
    from_grid,
    from_text,
    may_give_scores,
    percent_from_counts,
    ready_for_validation,
)
from mailbot.tagging import MAX_TAGS, Tagger, load_criteria, tag_comment

ROOT = Path(__file__).resolve().parents[1]
L, C, S, P, R = (Criterion.LEADERSHIP, Criterion.CURRICULUM, Criterion.CULTURE,
                 Criterion.PROFESSIONAL_DEVELOPMENT, Criterion.RESOURCES)
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def csv_file(data: bytes, name: str = "results.csv") -> Attachment:
    return Attachment(name, "text/csv", data)


def workbook(*sheets: list[list[object]], percent_format: bool = False) -> bytes:
    book = openpyxl.Workbook()
    first = book.active
    assert first is not None
    book.remove(first)
    for index, rows in enumerate(sheets):
        sheet = book.create_sheet(f"Sheet{index + 1}")
        for row in rows:
            sheet.append(row)
        if percent_format:
            for line in sheet.iter_rows():
                for cell in line:
                    if isinstance(cell.value, float):
                        cell.number_format = "0%"
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def percents(reading: Reading, school: str = OWN) -> dict[Criterion, float]:
    return {c: round(score.percent, 2)
            for c, score in reading.schools[school].scores.items()}


def problems_mention(reading: Reading, *words: str) -> bool:
    return any(all(w in p for w in words) for p in reading.problems)


# --- criterion names --------------------------------------------------------

@pytest.mark.parametrize(("name", "expected"), [
    ("Leadership & Vision", L), ("Leadership and Vision", L),
    ("LEADERSHIP AND VISION", L), ("Leadership", L), ("L&V", L), ("L & V", L),
    ("1. Leadership & Vision (%)", L), ("Leadership & Vision (L&V)", L),
    ("Criterion 1: Leadership and vision", L), ("Leadership score", L),
    ("Use of Digital Technology to Deliver the Curriculum", C),
    ("Use of digital technology to deliver the curriculum %", C),
    ("Curriculum", C), ("Digital Technology", C), ("Use of Digital Technology", C),
    ("Digital technology & the curriculum", C), ("Learning & Teaching", C),
    ("School Culture", S), ("Culture", S), ("school-culture", S),
    ("Professional Development", P), ("CPD", P), ("PD", P), ("C.P.D.", P),
    ("Professional Learning", P), ("CLPL", P), ("PD score", P),
    ("Resources & Infrastructure", R), ("Resources and infrastructure", R),
    ("Resources", R), ("Infrastructure", R), ("R&I", R), ("R & I", R),
    ("resources/infrastructure", R),
])
def test_criterion_names_are_matched_leniently(name: str,
                                               expected: Criterion) -> None:
    assert criterion(name) == expected


@pytest.mark.parametrize("name", [
    "Total", "Overall", "Pupil Voice", "Leadership & Culture", "Digital",
    "School", "Learning", "Technology and Culture", "Professional", "",
    "Criterion", "%", "Strengths and weaknesses", "Staff",
])
def test_unknown_names_are_not_guessed(name: str) -> None:
    assert criterion(name) is None


def test_full_names() -> None:
    assert [c.full for c in Criterion] == [
        "Leadership & Vision",
        "Use of Digital Technology to Deliver the Curriculum",
        "School Culture", "Professional Development",
        "Resources & Infrastructure"]


# --- percentages and readiness -----------------------------------------------

def test_percent_from_counts_is_addressed_over_total() -> None:
    assert percent_from_counts(Counts(12, 3, 1)) == 75.0
    # Partially addressed earns nothing: the conservative reading.
    assert percent_from_counts(Counts(0, 10, 0)) == 0.0
    assert percent_from_counts(Counts(5, 0, 0)) == 100.0
    assert percent_from_counts(Counts(0, 0, 0)) is None


def results(**values: float) -> Results:
    return Results({Criterion(k): Score(v) for k, v in values.items()})


def test_ready_when_every_criterion_reaches_70() -> None:
    ready = results(leadership=70, curriculum=85, culture=100,
                    professional_development=71.5, resources=90)
    assert ready_for_validation(ready) == (True, [])


def test_short_criteria_in_the_programme_order() -> None:
    short = results(leadership=69.9, curriculum=85, culture=40,
                    professional_development=71.5, resources=90)
    assert ready_for_validation(short) == (False, [L, S])


def test_a_missing_criterion_is_short() -> None:
    partial = results(leadership=80, curriculum=80, culture=80, resources=80)
    assert ready_for_validation(partial) == (False, [P])
    assert partial.missing == [P]
    assert ready_for_validation(Results()) == (False, list(Criterion))


def test_threshold_can_be_given() -> None:
    mixed = results(leadership=80, curriculum=75, culture=90,
                    professional_development=85, resources=79)
    assert ready_for_validation(mixed, threshold=80) == (False, [C, R])
    assert ready_for_validation(mixed, threshold=75)[0]


# --- sheets: one row per criterion -------------------------------------------

def test_rows_of_criteria_with_a_score_column() -> None:
    reading = from_grid([
        ["Criterion", "Score"],
        ["Leadership & Vision", "85%"],
        ["Use of Digital Technology to Deliver the Curriculum", "72"],
        ["School Culture", "90.0 %"],
        ["Professional Development", "68"],
        ["Resources & Infrastructure", "100%"],
    ])
    assert percents(reading) == {L: 85, C: 72, S: 90, P: 68, R: 100}
    assert reading.problems == []
    assert not any(s.estimated for s in reading.schools[OWN].scores.values())


def test_header_below_a_title_and_the_school_named_above() -> None:
    reading = from_grid([
        ["Digital Schools self-review - summary", ""],
        ["", ""],
        ["School:", "Glenbrae Primary School"],
        ["Date", "2027-01-20"],
        ["", ""],
        ["Area", "Percentage"],
        ["L&V", "0.85"], ["Curriculum", "0.7"], ["Culture", "1"],
        ["CPD", "0.655"], ["R&I", "0.9"],
        ["Total", "0.82"],
    ])
    assert percents(reading, "Glenbrae Primary School") == {
        L: 85, C: 70, S: 100, P: 65.5, R: 90}
    assert reading.problems == []


def test_three_count_columns_give_an_estimate() -> None:
    reading = from_grid([
        ["Criterion", "Addressed", "Partially addressed", "Not addressed"],
        ["Leadership & Vision", "12", "3", "1"],
        ["Curriculum", "10", "0", "0"],
        ["School Culture", "7", "2", "1"],
    ])
    scores = reading.schools[OWN].scores
    assert scores[L] == Score(75.0, Counts(12, 3, 1), estimated=True)
    assert scores[C].percent == 100
    assert scores[S].percent == 70
    assert reading.problems == []


def test_counts_and_a_stated_percentage_the_percentage_wins() -> None:
    # Essential statements weigh more: 81% from 12 of 16 is possible.
    reading = from_grid([
        ["Criterion", "Addressed", "Partially", "Not addressed", "Score %"],
        ["Leadership", "12", "3", "1", "81%"],
    ])
    assert reading.schools[OWN].scores[L] == Score(81.0, Counts(12, 3, 1))
    assert reading.problems == []


@pytest.mark.parametrize(("row", "words"), [
    (["Leadership", "12", "3", "1", "100%"], ("100%", "not every")),
    (["Leadership", "16", "0", "0", "90%"], ("every statement", "90%")),
    (["Leadership", "0", "0", "16", "20%"], ("no statement", "20%")),
])
def test_counts_that_contradict_the_percentage(row: list[str],
                                               words: tuple[str, ...]) -> None:
    reading = from_grid([
        ["Criterion", "Addressed", "Partially", "Not addressed", "Score %"],
        row])
    assert problems_mention(reading, "Leadership & Vision", *words)


def test_a_total_column_that_does_not_add_up() -> None:
    reading = from_grid([
        ["Area", "Addressed", "Partially", "Not addressed", "Total statements"],
        ["Culture", "8", "0", "2", "9"],
        ["Resources", "8", "1", "1", "10"],
    ])
    assert problems_mention(reading, "row 2", "School Culture", "10", "9")
    assert percents(reading) == {S: 80, R: 80}


def test_no_statements_counted() -> None:
    reading = from_grid([["Area", "Addressed", "Partially", "Not addressed"],
                         ["Culture", "0", "0", "0"]])
    assert reading.schools == {}
    assert problems_mention(reading, "School Culture", "no statements")


def test_rows_without_a_header() -> None:
    reading = from_grid([
        ["Leadership & Vision", "80%"], ["Curriculum", "75"],
        ["School culture", "90"], ["Total", "81"]])
    assert percents(reading) == {L: 80, C: 75, S: 90}
    assert reading.problems == []


def test_a_grid_that_is_not_results_says_nothing() -> None:
    reading = from_grid([["School", "Contact", "Email"],
                         ["Glenbrae PS", "Alan Reid", "a.reid@example.org"]])
    assert reading == Reading()
    assert from_grid([]) == Reading()
    assert from_grid([["Notes"], ["We are proud of our 2019 award"]]) == Reading()


@pytest.mark.parametrize(("cell", "problem"), [
    ("120%", "over 100%"), ("101", "over 100%"), ("-5", "below 0%"),
    ("eighty", "not a percentage"), ("80% approx", "not a percentage"),
])
def test_bad_percentages_are_reported(cell: str, problem: str) -> None:
    reading = from_grid([["Criterion", "Score"], ["Leadership", "70%"],
                         ["School Culture", cell]])
    assert problems_mention(reading, "row 3", "School Culture", problem)
    assert percents(reading) == {L: 70}


def test_a_fraction_among_percentages_is_questioned() -> None:
    reading = from_grid([["Criterion", "%"], ["Leadership", "80"],
                         ["Curriculum", "0.75"]])
    assert problems_mention(reading, "0.75", "75%?")
    assert percents(reading) == {L: 80}


def test_a_percentage_sign_keeps_small_numbers_small() -> None:
    reading = from_grid([["Criterion", "%"], ["Leadership", "0.5%"],
                         ["Culture", "0.75"]])
    assert percents(reading) == {L: 0.5, S: 75}


def test_only_zeros_and_ones_are_doubted() -> None:
    reading = from_grid([["Criterion", "Score"], ["Leadership", "1"],
                         ["Culture", "0"]])
    assert problems_mention(reading, "0 and 1")
    assert percents(reading) == {L: 1, S: 0}


@pytest.mark.parametrize("cell", ["12.5", "three", "-1"])
def test_bad_counts_are_reported(cell: str) -> None:
    reading = from_grid([["Criterion", "Addressed", "Partially", "Not addressed"],
                         ["Leadership", cell, "1", "1"]])
    assert problems_mention(reading, "row 2", "Leadership & Vision",
                            "not a number of statements")


def test_an_unknown_criterion_row_is_reported_not_read() -> None:
    reading = from_grid([["Criterion", "Score"], ["Leadership", "80%"],
                         ["Pupil voice", "60%"], ["Digital leaders", "70%"]])
    assert percents(reading) == {L: 80}
    assert problems_mention(reading, "row 3", "'Pupil voice'", "not one of")
    assert problems_mention(reading, "row 4", "'Digital leaders'")


def test_a_criterion_given_twice() -> None:
    reading = from_grid([["Criterion", "Score"], ["Leadership", "80%"],
                         ["L&V", "60%"], ["Culture", "70"], ["Culture", "70"]])
    assert percents(reading) == {L: 80, S: 70}
    assert problems_mention(reading, "Leadership & Vision", "twice", "80%",
                            "60%")
    assert len(reading.problems) == 1


def test_one_row_per_school_and_criterion() -> None:
    reading = from_grid([
        ["School", "Criterion", "Score"],
        ["Glenbrae PS", "Leadership", "80%"],
        ["Glenbrae PS", "Culture", "65%"],
        ["Kinross High", "Leadership", "90%"],
    ])
    assert percents(reading, "Glenbrae PS") == {L: 80, S: 65}
    assert percents(reading, "Kinross High") == {L: 90}


# --- sheets: one row per school ---------------------------------------------

CLUSTER = [
    ["School", "Leadership & Vision", "Curriculum", "School Culture", "CPD",
     "R&I"],
    ["Glenbrae Primary", "80%", "75%", "90%", "65%", "100%"],
    ["St Mary's RC Primary", "70", "72", "68", "", "85"],
    ["Kinross High School", "88", "91", "70", "79", "73"],
    ["Cluster average", "79", "79", "76", "72", "86"],
]


def test_a_cluster_sheet_by_school() -> None:
    reading = from_grid(CLUSTER)
    assert list(reading.schools) == ["Glenbrae Primary", "St Mary's RC Primary",
                                     "Kinross High School"]
    assert percents(reading, "Glenbrae Primary") == {
        L: 80, C: 75, S: 90, P: 65, R: 100}
    assert ready_for_validation(reading.schools["Kinross High School"]) \
        == (True, [])
    assert ready_for_validation(reading.schools["St Mary's RC Primary"]) \
        == (False, [S, P])
    assert reading.problems == [
        "St Mary's RC Primary: no value for Professional Development"]


def test_a_cluster_sheet_with_a_title_and_extra_columns() -> None:
    reading = from_grid([
        ["Glenbrae Cluster - self-review tracker", "", "", "", "", "", ""],
        ["Updated by the cluster lead", "", "", "", "", "", ""],
        ["Name of school", "Head teacher", "L&V", "Digital technology",
         "Culture", "Professional learning", "Resources"],
        ["Glenbrae PS", "Alan Reid", "85", "80", "70", "75", "90"],
        ["Balgonie PS", "Jo Bell", "55", "60", "65", "70", "75"],
    ])
    assert percents(reading, "Balgonie PS") == {L: 55, C: 60, S: 65, P: 70,
                                                R: 75}
    assert reading.problems == []


def test_a_cluster_sheet_with_an_unknown_criterion_column() -> None:
    reading = from_grid([
        ["School", "Leadership", "Culture", "Pupil Voice", "Notes"],
        ["Glenbrae PS", "80", "75", "60", "going well"],
    ])
    assert percents(reading, "Glenbrae PS") == {L: 80, S: 75}
    assert problems_mention(reading, "'Pupil Voice'", "not one of")
    assert len(reading.problems) == 1


def test_a_cluster_sheet_row_with_no_school_name() -> None:
    reading = from_grid([["School", "Leadership", "Culture"],
                         ["Glenbrae PS", "80", "75"], ["", "60", "65"]])
    assert list(reading.schools) == ["Glenbrae PS"]
    assert problems_mention(reading, "row 3", "no school name")


def test_one_school_across_without_a_school_column() -> None:
    reading = from_grid([["Leadership", "Curriculum", "Culture", "CPD",
                          "Resources"],
                         ["0.8", "0.75", "0.9", "0.7", "1"]])
    assert percents(reading) == {L: 80, C: 75, S: 90, P: 70, R: 100}


# --- sheets as Excel writes them --------------------------------------------

def cluster_csv(delimiter: str = ",") -> str:
    return "\r\n".join(delimiter.join(row) for row in CLUSTER) + "\r\n"


def test_csv_with_a_utf8_bom() -> None:
    data = codecs.BOM_UTF8 + cluster_csv().encode("utf-8")
    reading = from_attachment(csv_file(data))
    assert percents(reading, "Glenbrae Primary")[L] == 80


def test_csv_with_semicolons_and_decimal_commas() -> None:
    text = ("sep=;\r\nSchool;Leadership & Vision;School Culture\r\n"
            "Sgoil Gh\u00e0idhlig Ghlaschu;85,5%;72,25\r\n")
    reading = from_attachment(csv_file(text.encode("cp1252")))
    assert percents(reading, "Sgoil Gh\u00e0idhlig Ghlaschu") == {L: 85.5,
                                                                 S: 72.25}


def test_csv_sniffed_semicolons_without_sep_line() -> None:
    reading = from_attachment(csv_file(cluster_csv(";").encode("utf-8")))
    assert len(reading.schools) == 3


def test_utf16_unicode_text_from_excel() -> None:
    text = ("Criterion\tAddressed\tPartially addressed\tNot addressed\r\n"
            "Leadership & Vision\t12\t3\t1\r\n"
            "Resources & Infrastructure\t9\t1\t0\r\n")
    for data in (codecs.BOM_UTF16_LE + text.encode("utf-16-le"),
                 text.encode("utf-16-le")):
        reading = from_attachment(csv_file(data, "results.txt.csv"))
        assert percents(reading) == {L: 75, R: 90}


def test_xlsx_cluster_sheet_with_percentage_cells() -> None:
    data = workbook([
        ["Glenbrae Cluster \u2013 self-review summary"],
        [],
        ["School", "Leadership & Vision",
         "Use of Digital Technology to Deliver the Curriculum",
         "School Culture", "Professional Development",
         "Resources & Infrastructure"],
        ["Glenbrae Primary", 0.85, 0.7, 1.0, 0.65, 0.9],
        ["Kinross High", 0.75, 0.8, 0.9, 0.71, 1],
    ], percent_format=True)
    reading = from_attachment(Attachment("summary.xlsx", XLSX, data))
    assert percents(reading, "Glenbrae Primary") == {
        L: 85, C: 70, S: 100, P: 65, R: 90}
    assert percents(reading, "Kinross High")[R] == 100
    assert reading.problems == []


def test_xlsx_results_on_a_second_sheet_with_counts() -> None:
    data = workbook(
        [["Notes"], ["Filled in by the DHT"]],
        [["Criterion", "Addressed", "Partially", "Not addressed"],
         ["Leadership & Vision", 12, 3, 1], ["School Culture", 10, 0, 0]])
    reading = from_attachment(Attachment("selfreview.xlsx", XLSX, data))
    assert percents(reading) == {L: 75, S: 100}


def test_problems_name_the_sheet_of_a_workbook() -> None:
    data = workbook([["Criterion", "Score"], ["Leadership", "abc"]],
                    [["Criterion", "Score"], ["Culture", 150]])
    reading = from_attachment(Attachment("r.xlsx", XLSX, data))
    assert problems_mention(reading, "sheet 1, row 2")
    assert problems_mention(reading, "sheet 2, row 2", "over 100%")


def test_a_damaged_workbook_gives_nothing() -> None:
    reading = from_attachment(Attachment("r.xlsx", XLSX, b"PK\x03\x04broken"))
    assert reading == Reading()


def test_not_a_spreadsheet() -> None:
    assert from_attachment(Attachment("a.pdf", "application/pdf",
                                      b"%PDF")) == Reading()


def test_a_sheet_refused_for_its_size_is_set_aside() -> None:
    with pytest.raises(SetAside):
        from_attachment(Attachment("big.csv", "text/csv", b"x",
                                   unread="too large"))


# --- mail text ----------------------------------------------------------------

def test_labelled_lines() -> None:
    reading = from_text(
        "Hi,\n\nWe have finished the self-review. Our scores:\n\n"
        "Leadership & Vision: 80%\nCurriculum 75%\n"
        "School Culture - 90 per cent\nCPD = 65 %\n"
        "Resources & Infrastructure: 100%\nOverall: 82%\n\n"
        "Best wishes\nAlan\n")
    assert percents(reading) == {L: 80, C: 75, S: 90, P: 65, R: 100}
    assert reading.problems == []


def test_bulleted_lines_and_bare_numbers() -> None:
    reading = from_text("- Leadership: 80\n- Curriculum: 75\n"
                        "* Culture: 70\n")
    assert percents(reading) == {L: 80, C: 75, S: 70}


def test_fractions_in_text() -> None:
    reading = from_text("Leadership: 0.8\nCulture: 0.65\n")
    assert percents(reading) == {L: 80, S: 65}


def test_counts_in_a_sentence() -> None:
    reading = from_text("We have 12 addressed, 3 partially and 1 not "
                        "addressed in School Culture.")
    assert reading.schools[OWN].scores[S] == Score(75.0, Counts(12, 3, 1),
                                                   estimated=True)


def test_counts_across_a_wrapped_line() -> None:
    reading = from_text("In Leadership & Vision we have 12 statements addressed,\n"
                        "3 partially addressed and 1 not yet addressed.\n")
    assert reading.schools[OWN].scores[L].counts == Counts(12, 3, 1)


def test_counts_named_before_their_numbers() -> None:
    reading = from_text("Professional Development: addressed 8, partially 2,"
                        " not addressed 1\nR&I - addressed: 5 partially: 0 "
                        "not addressed: 0")
    scores = reading.schools[OWN].scores
    assert scores[P].counts == Counts(8, 2, 1)
    assert scores[R].counts == Counts(5, 0, 0)


def test_percentages_after_in() -> None:
    reading = from_text("We scored 80% in Leadership and 75% in the School "
                        "Culture section. For CPD we got 60%.")
    assert percents(reading) == {L: 80, S: 75, P: 60}


def test_out_of_and_slash() -> None:
    reading = from_text("Culture: 10 out of 12 statements addressed.\n"
                        "Resources - 9/10 addressed\n")
    assert percents(reading) == {S: 83.33, R: 90}
    assert reading.schools[OWN].scores[R].estimated


def test_a_percentage_then_counts_for_another_criterion() -> None:
    reading = from_text("Leadership: 80%\nWe have 12 addressed and 4 not "
                        "addressed in Culture\n")
    assert percents(reading) == {L: 80, S: 75}


def test_a_pasted_table_of_counts() -> None:
    reading = from_text(
        "Here are our results:\n\n"
        "Criterion\tAddressed\tPartially\tNot addressed\n"
        "Leadership & Vision\t12\t3\t1\n"
        "Curriculum\t10\t2\t0\n\nThanks\n")
    assert percents(reading) == {L: 75, C: 83.33}


def test_a_pasted_markdown_table() -> None:
    reading = from_text("| Area | Score |\n|------|-------|\n"
                        "| School Culture | 85% |\n| CPD | 70% |\n")
    assert percents(reading) == {S: 85, P: 70}


def test_a_pasted_cluster_table_from_word() -> None:
    reading = from_text("School    Leadership    Culture\n"
                        "Glenbrae PS    80    75\nBalgonie PS    60    90\n")
    assert percents(reading, "Balgonie PS") == {L: 60, S: 90}


def test_long_decimals_are_read_not_refused() -> None:
    # A workbook's computed share (12/17) and a percentage pasted with
    # many decimals (guards a bug: over 7 decimals were refused).
    reading = from_grid([["Criterion", "Percent"],
                         ["Leadership & Vision", str(12 / 17)],
                         ["School Culture", "70.58823529%"]])
    assert percents(reading) == {L: 70.59, S: 70.59}
    assert reading.problems == []
    assert percents(from_text("Culture: 70.58823529%\n")) == {S: 70.59}


def test_unknown_label_in_text() -> None:
    reading = from_text("Leadership: 80%\nPupil voice: 65%\n")
    assert percents(reading) == {L: 80}
    assert problems_mention(reading, "'Pupil voice'", "not one of")


def test_counts_with_no_criterion() -> None:
    reading = from_text("We have 3 addressed and 2 not addressed.")
    assert reading.schools == {}
    assert problems_mention(reading, "no criterion")


def test_out_of_range_in_text() -> None:
    reading = from_text("Resources: 120%\nCulture: 80%")
    assert percents(reading) == {S: 80}
    assert problems_mention(reading, "Resources & Infrastructure", "over 100%")


def test_prose_with_numbers_is_no_result() -> None:
    reading = from_text(
        "90% of our pupils have their own device. Our AUP dates from 2019 "
        "and our P5-P7 classes use Chromebooks. We have 2 digital leaders "
        "per class and 3 technicians.")
    assert reading == Reading()


def test_a_comment_without_results() -> None:
    text = new_text(parse(next((ROOT / "mailbot" / "demo_mail").glob(
        "04-*.eml")).read_bytes()).text)
    assert from_text(text) == Reading()



# Pieces of results and of prose, put together in every order: the test
# below must hold for text that is neither quite one nor the other.
_PIECES = st.sampled_from([
    "Leadership", "vision", "L&V", "R & I", "culture", "CPD", "pd",
    "digital technology", "curriculum", "Resources:", "Culture -",
    "80%", "75", "0.9", "12", "3/4", "10 out of 12", "addressed",
    "not yet addressed", "partially", "in", "for", "the", "our pupils",
    "P5", "2019", "devices", ".", ". ", ";", "!", "?", ",", ":", " - ",
    "\n", "\n\n", "\n  \n", "\t", " | ", "   ", " ", "e.g.", "3.5",
    "visionary", "vision's", "Ltd.", "\u00e9cole", "\u0130", "1.",
    "learning and teaching", "teaching & learning", "learning", "school",
    "staff development", "digital tech", "resource", "&", "+", "'s",
    "\u2019s", "\u212a", "Leadership\u00a0&\u00a0Vision", "\u0661\u0662",
    "\u00a0 ", " \u00a0", "\u3000", "L-V", "R/I", "P.D.", "Cul-ture"])


@settings(max_examples=600, deadline=None)
@given(st.lists(_PIECES, max_size=24).map("".join))
def test_the_quick_test_never_skips_a_score(text: str) -> None:
    # may_give_scores lets results.py skip from_text for most prose; a
    # text it skips must hold no score.
    reading = from_text(text)
    if any(results.scores for results in reading.schools.values()):
        assert may_give_scores(text)


@pytest.mark.parametrize("text", [
    "Leadership & Vision: 80%", "Culture - 10 out of 12 addressed",
    "We reached 75% in School Culture.", "L&V 80\nR&I 70",
    "Leadership\n80%",
    # Guards a bug: a table whose cells a no-break space ends was skipped.
    "Area\u00a0  Score\nL-V\u00a0  80%\nR-I\u00a0  75%\n",
    "Area\u3000  Score\nCul-ture\u3000  80%\nP.D.\u3000  75%\n"])
def test_the_quick_test_passes_results(text: str) -> None:
    assert may_give_scores(text)
    assert from_text(text).schools


@pytest.mark.parametrize("text", [
    ("All of our P5 to P7 pupils now have their own device.\n\nOur "
     "digital leaders run a coding club. Our AUP dates from 2019."),
    "Our ref: GLE-000123", "no numbers about leadership at all"])
def test_the_quick_test_skips_prose(text: str) -> None:
    assert not may_give_scores(text)
    assert not from_text(text).schools

# --- comments by criterion --------------------------------------------------

def kinds(text: str) -> set[tuple[Criterion, str]]:
    return {(tag.criterion, tag.kind) for tag in tag_comment(text)}


def test_the_sample_comment() -> None:
    text = new_text(parse(next((ROOT / "mailbot" / "demo_mail").glob(
        "04-*.eml")).read_bytes()).text)
    tags = tag_comment(text)
    assert {(t.criterion, t.kind) for t in tags} == {
        (R, "strength"), (S, "strength"), (C, "strength"),
        (L, "weakness"), (S, "weakness")}
    leadership = next(t for t in tags if t.criterion == L)
    assert leadership.evidence.startswith("our Acceptable Usage Policy dates")
    assert leadership.phrase == "acceptable usage policy"


@pytest.mark.parametrize(("text", "expected"), [
    ("We do not struggle with wifi.", {(R, "strength")}),
    ("We don't have any problems with our wifi.", {(R, "weakness")}),
    ("We never have problems with the wifi.", {(R, "strength")}),
    ("There are no gaps in our online safety teaching.", {(S, "strength")}),
    ("Our wifi is not good.", {(R, "weakness")}),
    ("Staff are not confident using Seesaw.", {(P, "weakness"),
                                               (C, "weakness")}),
    ("We struggle with wifi.", {(R, "weakness")}),
    ("Coding is a real strength.", {(C, "strength")}),
    ("We need more devices.", {(R, "weakness")}),
    ("Our digital strategy is not yet written.", {(L, "weakness")}),
    ("Online safety is embedded across the school.", {(S, "strength")}),
    ("Online safety is not embedded yet.", {(S, "weakness")}),
    # Plain words a school used, found by trying mailbot as a new user.
    ("We have very few devices and only one laptop trolley.",
     {(R, "weakness")}),
    ("There is no digital strategy written down yet.", {(L, "weakness")}),
    ("The wifi drops out in the hall.", {(R, "weakness")}),
    ("Parents have been very positive about our online safety evenings.",
     {(S, "strength")}),
    ("On the plus side, our digital leaders now run the coding club.",
     {(C, "strength"), (S, "strength")}),
    ("Parents are not positive about the new devices.",
     {(S, "weakness"), (R, "weakness")}),
    ("Our digital strategy dates back to 2019.", {(L, "weakness")}),
    ("Our digital leaders are brilliant.", {(S, "strength")}),
    ("The new Chromebooks have made a huge difference.", {(R, "strength")}),
    ("Online safety teaching is a bit hit and miss.", {(S, "weakness")}),
    ("All teaching staff are now Google Certified Educators.",
     {(P, "strength")}),
    ("New laptops would make a huge difference to us.", {(R, "weakness")}),
])
def test_cues_and_negations(text: str,
                            expected: set[tuple[Criterion, str]]) -> None:
    assert kinds(text) == expected


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from([
    "our", "the", "key", "and", "or", "AND", "/", "&", ",", "-", ":", "*",
    "#", "_", "Strengths", "weaknesses", "areas", "for", "development",
    "school's", "Next", "steps", "wifi", "is", "good", "\u2019s",
    *load_criteria().headings["strength"],
    *load_criteria().headings["weakness"]]), min_size=1, max_size=6),
    st.sampled_from([" ", ""]))
def test_the_quick_heading_test_changes_no_answer(words: list[str],
                                                  joint: str) -> None:
    # Tagger._heading first asks whether the label's first word may start
    # a heading; the answer must be what reading every part gives.
    from mailbot.tagging import _HEADING_PARTS, _heading_key, default_tagger
    tagger = default_tagger()
    line = joint.join(words)
    label = line
    for mark in (":", " - ", " \u2013 "):
        if mark in line[:80]:
            label = line.partition(mark)[0]
            break
    kinds = {tagger.headings.get(_heading_key(part))
             for part in _HEADING_PARTS.split(label) if part.strip("*#_ ")}
    whole = kinds.pop() if len(kinds) == 1 and len(label) <= 80 else None
    assert tagger._heading(line)[0] == whole


def test_a_comment_keeps_at_most_max_tags() -> None:
    # One sentence of thousands of clauses (guards a bug: the sentence cap
    # did not bound them, and every tag was kept with the comment).
    tags = tag_comment("The wifi is poor, but " * 5000)
    assert len(tags) == MAX_TAGS
    assert {(t.criterion, t.kind) for t in tags} == {(R, "weakness")}


def test_a_sentence_with_several_criteria() -> None:
    tags = tag_comment("Our digital leaders run CLPL sessions for staff on "
                       "the new iPads and it is going really well.")
    assert {(t.criterion, t.kind) for t in tags} == {
        (S, "strength"), (P, "strength"), (R, "strength")}
    assert len({t.evidence for t in tags}) == 1


def test_a_contrast_splits_a_sentence() -> None:
    tags = tag_comment("We are strong in coding but we need more devices.")
    assert [(t.criterion, t.kind, t.evidence) for t in tags] == [
        (C, "strength", "We are strong in coding"),
        (R, "weakness", "we need more devices.")]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(
    st.sampled_from(["but", "BUT", "However", "though", "although",
                     "whereas", "whilst", "while", "except", "butter",
                     "bu\u0163", "whil\u017ft", "\u0130", "\u212a"]),
    st.sampled_from([" ", ", ", "-", "\u2019", "_"]),
    st.text(max_size=3)), max_size=12).map("".join))
def test_a_sentence_is_split_where_the_contrast_regex_splits_it(
        sentence: str) -> None:
    # The quick look for contrast words before the split changes nothing.
    assert tagging._clauses(sentence) == tagging._CONTRAST.split(sentence)


def test_cues_of_both_kinds_make_a_weakness() -> None:
    assert kinds("Good use of Teams in class, with patchy wifi.") == {
        (R, "weakness")}


def test_no_cue_and_no_section_is_not_tagged() -> None:
    assert tag_comment("We use iPads and Chromebooks in P5.") == []
    assert tag_comment("") == []
    assert tag_comment("Going really well, thank you!") == []


def test_sections_carry_their_kind_to_the_lines_below() -> None:
    text = ("Dear programme,\n\nStrengths:\n"
            "- every class has an interactive whiteboard\n"
            "- a weekly coding club\n\n"
            "Areas for development:\n"
            "- the AUP\n- online safety lessons for P1-P3\n\n"
            "We use Seesaw with parents.\n")
    tags = tag_comment(text)
    assert [(t.criterion, t.kind) for t in tags] == [
        (R, "strength"), (C, "strength"), (L, "weakness"),
        (C, "weakness"), (S, "weakness")]


def test_a_heading_written_as_a_sentence_s_start() -> None:
    # Found by trying mailbot with a school's everyday mail: under "Our
    # main areas for development are:" only one line of four was tagged.
    text = ("Our main areas for development are:\n"
            "1. Our digital strategy, which is three years old.\n"
            "2. Interactive whiteboards in the infant classes.\n\n"
            "Strengths include:\n- the weekly coding club\n")
    assert [(t.criterion, t.kind) for t in tag_comment(text)] == [
        (L, "weakness"), (R, "weakness"), (C, "strength")]


def test_a_section_survives_blank_lines_between_its_bullets() -> None:
    text = "Weaknesses:\n\n- wifi in the annexe\n\n- staff training\n"
    assert kinds(text) == {(R, "weakness"), (P, "weakness")}


def test_a_blank_line_ends_a_section_before_prose() -> None:
    text = "Strengths: our website.\n\nThe parents' evening was about wifi."
    assert [(t.criterion, t.kind) for t in tag_comment(text)] == [
        (S, "strength")]


@pytest.mark.parametrize("heading", [
    "Strengths", "STRENGTHS:", "Our strengths -", "**Key strengths**",
    "What's going well:", "Possible strengths:",
])
def test_strength_headings(heading: str) -> None:
    assert kinds(f"{heading}\nThe school website and the digital leaders.") \
        == {(S, "strength")}


@pytest.mark.parametrize("heading", [
    "Weaknesses", "Possible weaknesses:", "Weaknesses / areas for development:",
    "Next steps -", "Areas for improvement", "Gaps:",
])
def test_weakness_headings(heading: str) -> None:
    assert kinds(f"{heading}\nThe school website.") == {(S, "weakness")}


def test_an_inline_section_and_a_cue_that_overrides_it() -> None:
    text = ("Strengths: staff training is regular, although the wifi "
            "struggles in the hall.")
    assert [(t.criterion, t.kind) for t in tag_comment(text)] == [
        (P, "strength"), (R, "weakness")]


def test_a_label_that_is_not_a_heading() -> None:
    assert tag_comment("Note: our wifi was upgraded.") == []


def test_additional_support_needs_is_not_a_weakness() -> None:
    assert kinds("Strengths: pupils with additional support needs use "
                 "iPads every day.") == {(R, "strength")}


def test_evidence_is_cut() -> None:
    tags = tag_comment("We struggle with wifi " + "and more " * 200 + ".")
    assert len(tags[0].evidence) == 300


# --- the rules file ----------------------------------------------------------

def test_the_shipped_rules_load() -> None:
    rules = load_criteria()
    assert set(rules.phrases) == set(Criterion)
    assert "acceptable use policy" in rules.phrases[L]
    Tagger(rules)


def write_rules(tmp_path: Path, old: str, new: str) -> Path:
    text = (ROOT / "rules" / "criteria.toml").read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "criteria.toml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


@pytest.mark.parametrize(("old", "new", "key"), [
    ("[culture]", "[cultre]", "cultre"),
    ("[culture]\nphrases", "[culture]\nphrase", "culture.phrase"),
    ('    "wifi",', '    "--",', "resources.phrases"),
    ('negations = ["not"', 'negations = [""', "negations"),
    ("[weakness]\ncues = [", "[weakness]\ncue = [", "weakness.cue"),
])
def test_mistakes_in_the_rules_are_named(tmp_path: Path, old: str, new: str,
                                         key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_criteria(write_rules(tmp_path, old, new))
    assert caught.value.key.startswith(key)


def test_missing_rules_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such rules file"):
        load_criteria(tmp_path / "criteria.toml")


# --- anything at all -----------------------------------------------------------

FRAGMENTS = st.sampled_from([
    "Leadership", " & ", "Vision", ": ", "80%", "0.85", "12", " addressed",
    " partially", " not", " in ", "Culture", "CPD", "R&I", "\n", "\n\n",
    "\t", " | ", "Strengths:", "Weaknesses:", "- ", "wifi", " not ",
    "struggle", "good", ".", " out of ", "/", "per cent", "Total", "\u2019",
    "don't", "yet", "  ", "1", "100", "-", "(L&V)", "\u0130", "\u00df",
])


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=300),
                 st.lists(FRAGMENTS, max_size=120).map("".join)))
def test_any_text_of_100_kb_is_read_without_error(chunk: str) -> None:
    text = (chunk or "x") * (100_000 // max(len(chunk), 1) + 1)
    text = text[:100_000]
    reading = from_text(text)
    assert len(reading.problems) <= 50
    for tag in tag_comment(text):
        assert tag.kind in ("strength", "weakness")
    from_text(chunk)
    tag_comment(chunk)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.one_of(st.text(max_size=12), FRAGMENTS),
                         max_size=8), max_size=12))
def test_any_grid_is_read_without_error(grid: list[list[str]]) -> None:
    reading = from_grid(grid)
    for results_ in reading.schools.values():
        for score in results_.scores.values():
            assert 0 <= score.percent <= 100

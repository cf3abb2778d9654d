"""Tables of schools from CSV, XLSX, HTML and pasted text."""

import codecs
import io

import openpyxl
import pytest

from mailbot import spreadsheets
from mailbot.errors import SetAside
from mailbot.mail import Attachment
from mailbot.spreadsheets import kind
from mailbot.tables import (
    CELL_LINKS,
    MAX_ROWS,
    SchoolRow,
    Table,
    column_meaning,
    field_label,
    from_attachment,
    from_html,
    from_text,
    interpret,
)

CSV = "text/csv"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def csv_file(text: str, encoding: str = "utf-8", name: str = "schools.csv",
             content_type: str = CSV) -> Attachment:
    return Attachment(name, content_type, text.encode(encoding))


def workbook(*sheets: list[list[object]], merge: str | None = None) -> bytes:
    book = openpyxl.Workbook()
    first = book.active
    assert first is not None
    book.remove(first)
    for index, rows in enumerate(sheets):
        sheet = book.create_sheet(f"Sheet{index + 1}")
        for row in rows:
            sheet.append(row)
        if merge and index == 0:
            sheet.merge_cells(merge)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def only_schools(tables: list[Table]) -> list[SchoolRow]:
    return [row for table in tables for row in table.schools]


# --- header recognition ----------------------------------------------------

@pytest.mark.parametrize(("label", "meaning"), [
    ("School", "school"), ("School name", "school"),
    ("Name of school", "school"), ("Establishment", "school"),
    ("SCHOOL NAME:", "school"), ("Schools", "school"),
    ("Phase", "phase"), ("Sector", "phase"), ("Type", "phase"),
    ("School type", "phase"), ("Stage", "phase"),
    ("Primary/Secondary", "phase"), ("Primary / Secondary", "phase"),
    ("Contact", "contact"), ("Contact name", "contact"),
    ("Head teacher", "contact"), ("Headteacher", "contact"),
    ("Lead", "contact"), ("Head Teacher Name", "contact"),
    ("Email", "email"), ("E-mail", "email"), ("Email address", "email"),
    ("Contact email", "email"), ("Head teacher e-mail", "email"),
    ("Already awarded?", "awarded"), ("Digital School?", "awarded"),
    ("Awarded", "awarded"), ("DSA status", "awarded"), ("Status", "awarded"),
    ("Name", "name"), ("Notes", "notes"), ("Comments", "notes"),
    ("Telephone", None), ("", None), ("Postcode", None),
    # Two labels for one column (found by trying mailbot with a table
    # pasted from Word): each part a contact's label.
    ("Head Teacher / contact", "contact"), ("Contact or lead", "contact"),
    ("Head teacher / telephone", None),
])
def test_column_meaning(label: str, meaning: str | None) -> None:
    assert column_meaning(label) == meaning


@pytest.mark.parametrize(("label", "name"), [
    ("Cluster", "cluster"), ("Cluster name:", "cluster"),
    ("Name of cluster", "cluster"), ("ASG", "cluster"),
    ("Local Authority", "authority"), ("Council", "authority"),
    ("LA", "authority"), ("Lead contact", "lead"), ("Lead", "lead"),
    ("Contact", "lead"), ("Lead contact email", "lead_email"),
    ("School", None), ("Phase", None),
])
def test_field_label(label: str, name: str | None) -> None:
    assert field_label(label) == name


def test_a_bare_name_column_is_the_contact_beside_a_school_column() -> None:
    table = interpret([["School", "Name", "Email"],
                       ["Kirkton PS", "Fiona Baird", "f@k.example"]])
    assert table is not None
    assert table.schools == (SchoolRow("Kirkton PS", contact="Fiona Baird",
                                       email="f@k.example"),)


def test_a_bare_name_column_is_the_school_without_a_school_column() -> None:
    table = interpret([["Name", "Phase"], ["Kirkton PS", "Primary"]])
    assert table is not None
    assert table.schools == (SchoolRow("Kirkton PS", phase="Primary"),)


def test_a_grid_without_a_header_or_labels_is_not_a_table() -> None:
    assert interpret([["a", "b"], ["c", "d"]]) is None
    assert interpret([]) is None


def test_section_headings_and_notes_are_not_schools() -> None:
    table = interpret([
        ["School", "Sector"],
        ["Primary schools", ""],
        ["Kirkton Primary School", "Primary"],
        ["", ""],
        ["Notes: please add any other schools", ""],
        ["* one school is still to confirm", ""],
    ])
    assert table is not None
    assert [row.school for row in table.schools] == ["Kirkton Primary School"]


# --- CSV --------------------------------------------------------------------

def test_excel_utf8_csv_with_bom_and_crlf() -> None:
    text = ("\ufeffSchool Name,School Type,Contact Name,Contact Email,"
            "Already awarded?\r\n"
            "Bun-sgoil Ghàidhlig Inbhir Bhrùra,Primary,Catrìona NicLeòid,"
            "c.nicleoid@bsg.example.sch.uk,No\r\n")
    [table] = from_attachment(csv_file(text))
    assert table.schools == (SchoolRow(
        "Bun-sgoil Ghàidhlig Inbhir Bhrùra", "Primary", "Catrìona NicLeòid",
        "c.nicleoid@bsg.example.sch.uk", "No"),)


def test_semicolon_csv_in_cp1252() -> None:
    text = ("Establishment;Sector;Head Teacher;E-mail\r\n"
            "St Serf\u2019s RC Primary;Primary;Declan O\u2019Neill;"
            "d.oneill@stserfs.example.sch.uk\r\n"
            "Àrd-sgoil Phort Rìgh;Secondary;Mòrag Dhòmhnallach;"
            "office@ardsgoil.example.sch.uk\r\n")
    rows = only_schools(from_attachment(csv_file(text, "cp1252")))
    assert [row.school for row in rows] == [
        "St Serf\u2019s RC Primary", "Àrd-sgoil Phort Rìgh"]
    assert rows[0].contact == "Declan O\u2019Neill"
    assert rows[1].contact == "Mòrag Dhòmhnallach"


def test_excel_unicode_text_is_utf16_with_tabs() -> None:
    text = "School\tPhase\tEmail\r\nGlenbrae High School\tS\tm@g.example\r\n"
    data = codecs.BOM_UTF16_LE + text.encode("utf-16-le")
    attachment = Attachment("schools.txt", "text/csv", data)
    assert only_schools(from_attachment(attachment)) == [
        SchoolRow("Glenbrae High School", phase="S", email="m@g.example")]


def test_utf16_without_a_bom() -> None:
    text = "School,Phase\r\nKirkton Primary,Primary\r\n"
    attachment = Attachment("s.csv", "text/csv", text.encode("utf-16-le"))
    assert only_schools(from_attachment(attachment)) == [
        SchoolRow("Kirkton Primary", phase="Primary")]


def test_excel_sep_line_names_the_delimiter() -> None:
    text = "sep=;\r\nSchool;Phase;Contact\r\nKirkton PS;P;Fiona, Baird\r\n"
    assert only_schools(from_attachment(csv_file(text))) == [
        SchoolRow("Kirkton PS", phase="P", contact="Fiona, Baird")]


def test_quoted_fields_blank_lines_and_trailing_empty_columns() -> None:
    text = ('School,Phase,Contact,Email,,,\n'
            '\n'
            '"Hillhead Primary School, Kirkcaldy",Primary,"Kaur, Mrs",'
            'mrs.kaur@hillhead.example,,,\n'
            '\n'
            'Burnside Academy,Secondary,,,,,\n')
    rows = only_schools(from_attachment(csv_file(text)))
    assert rows == [
        SchoolRow("Hillhead Primary School, Kirkcaldy", "Primary",
                  "Kaur, Mrs", "mrs.kaur@hillhead.example"),
        SchoolRow("Burnside Academy", "Secondary"),
    ]


def test_pipe_delimited_csv() -> None:
    text = "School|Email\nKirkton PS|f@k.example\nBurnside PS|g@b.example\n"
    assert [r.email for r in only_schools(from_attachment(csv_file(text)))] \
        == ["f@k.example", "g@b.example"]


def test_excel_content_type_with_a_csv_name() -> None:
    attachment = csv_file("School,Phase\nKirkton PS,Primary\n",
                          content_type="application/vnd.ms-excel")
    assert kind(attachment) == "csv"
    assert len(only_schools(from_attachment(attachment))) == 1


def test_a_header_below_title_rows_in_csv() -> None:
    text = ("Glenbrae Cluster - schools,,\n"
            "Local authority,Fife,\n"
            ",,\n"
            "Email,School,Sector\n"
            "a.reid@g.example,Glenbrae Primary School,Primary\n")
    [table] = from_attachment(csv_file(text))
    assert table.fields == {"authority": "Fife"}
    assert table.schools == (SchoolRow("Glenbrae Primary School", "Primary",
                                       email="a.reid@g.example"),)


def test_other_attachments_are_not_tables() -> None:
    pdf = Attachment("letter.pdf", "application/pdf", b"%PDF-1.4")
    assert kind(pdf) is None
    assert from_attachment(pdf) == []


def test_a_csv_of_nothing_useful_gives_no_tables() -> None:
    assert from_attachment(csv_file("a,b\n1,2\n")) == []
    assert from_attachment(csv_file("")) == []


# --- XLSX -------------------------------------------------------------------

def test_xlsx_header_at_row_four_with_columns_in_odd_order() -> None:
    data = workbook([
        ["Digital Schools Awards - Cluster Initiative"],
        ["Cluster name: Glenbrae Cluster"],
        ["Local authority", "Fife"],
        ["E-mail", "Sector", "Name of school", "Head Teacher", "Digital School?"],
        ["a.reid@g.example", "Primary", "Glenbrae Primary School", "Alan Reid",
         "No"],
        [None, "Secondary", "Glenbrae High School", None, True],
        [],
        ["Notes: return this sheet to the programme office"],
    ], merge="A1:E1")
    [table] = from_attachment(Attachment("cluster.xlsx", XLSX, data))
    assert table.fields == {"cluster": "Glenbrae Cluster",
                            "authority": "Fife"}
    assert table.schools == (
        SchoolRow("Glenbrae Primary School", "Primary", "Alan Reid",
                  "a.reid@g.example", "No"),
        SchoolRow("Glenbrae High School", "Secondary", awarded="Yes"),
    )


def test_xlsx_uses_the_first_sheet_with_a_header() -> None:
    instructions = [["How to fill in this workbook"], ["One school a row."]]
    schools = [["School", "Phase", "Phone"], ["Kirkton PS", "P", 1592000000]]
    tables = from_attachment(Attachment(
        "s.xlsx", "application/octet-stream", workbook(instructions, schools)))
    assert only_schools(tables) == [SchoolRow("Kirkton PS", phase="P")]


def test_xlsx_numbers_become_plain_text() -> None:
    data = workbook([["School", "Awarded"], ["Kirkton PS", 2024],
                     [1234, 0.5]])
    rows = only_schools(from_attachment(Attachment("s.xlsx", XLSX, data)))
    assert rows == [SchoolRow("Kirkton PS", awarded="2024"),
                    SchoolRow("1234", awarded="0.5")]


def test_a_damaged_workbook_gives_no_tables() -> None:
    damaged = Attachment("s.xlsx", XLSX, b"PK\x03\x04 not really a zip")
    assert from_attachment(damaged) == []
    truncated = Attachment("s.xlsx", XLSX,
                           workbook([["School"], ["Kirkton PS"]])[:300])
    assert from_attachment(truncated) == []


def test_a_long_workbook_is_read_only_so_far() -> None:
    rows: list[list[object]] = [["School", "Phase"]]
    rows += [[f"School {n} Primary", "Primary"] for n in range(MAX_ROWS + 500)]
    found = only_schools(from_attachment(Attachment("s.xlsx", XLSX,
                                                    workbook(rows))))
    assert len(found) == MAX_ROWS - 1


# --- bounds ---------------------------------------------------------------

def test_a_csv_is_read_only_so_far() -> None:
    lines = ["School,Phase"] + [f"School {n} Primary,Primary"
                                for n in range(MAX_ROWS + 500)]
    [grid] = spreadsheets.grids(csv_file("\r\n".join(lines)))
    assert len(grid) == MAX_ROWS


def test_a_csv_line_of_endless_cells_is_cut() -> None:
    text = ("School,Phase\r\n" + "," * 4_000_000 + "\r\n"
            "Kirkton Primary School,Primary\r\n")
    [grid] = spreadsheets.grids(csv_file(text))
    assert all(len(row) <= spreadsheets.MAX_COLUMNS for row in grid)
    assert grid[-1] == ["Kirkton Primary School", "Primary"]
    rows = only_schools(from_attachment(csv_file(text)))
    assert rows == [SchoolRow("Kirkton Primary School", "Primary")]


def test_a_csv_cell_too_long_to_be_a_school_is_cut() -> None:
    text = "School,Phase\r\n" + "x" * 9_000 + ",Primary\r\n"
    [grid] = spreadsheets.grids(csv_file(text))
    assert len(grid[1][0]) == spreadsheets.MAX_CELL_CHARS
    assert max(len(line) for line in spreadsheets._bounded_lines(
        "y" * 50_000 + "\r\nz\n")) == spreadsheets.MAX_LINE_CHARS + 2


def test_a_spreadsheet_too_large_to_read_sets_its_message_aside() -> None:
    big = csv_file("School\r\n" + "x" * spreadsheets.MAX_BYTES)
    with pytest.raises(SetAside) as caught:
        from_attachment(big)
    assert "'schools.csv' not read" in caught.value.reason
    assert f"over the {spreadsheets.MAX_BYTES:,}" in caught.value.reason


def test_a_spreadsheet_mail_left_unread_sets_its_message_aside() -> None:
    unread = Attachment("schools.xlsx", XLSX, b"", "more than 20 attachments")
    with pytest.raises(SetAside, match="more than 20 attachments"):
        from_attachment(unread)
    # Anything else left unread is simply not a table.
    assert from_attachment(Attachment("photo.jpg", "image/jpeg", b"",
                                      "more than 20 attachments")) == []


# --- HTML -------------------------------------------------------------------

def test_html_tables_with_th_header_and_key_value_table() -> None:
    html = """<html><body><p>Hello</p>
      <table><tr><td><b>Cluster</b></td><td>Carronvale LC</td></tr>
      <tr><td>Local Authority</td><td>Falkirk</td></tr></table>
      <table><tr><th>School</th><th>Sector</th><th>Email</th></tr>
      <tr><td><p class=MsoNormal>Carronvale<br>High School</p></td>
      <td>Secondary</td><td><a href="mailto:p@c.example">p@c.example</a></td>
      </tr></table></body></html>"""
    fields, schools = from_html(html)
    assert fields == Table((), {"cluster": "Carronvale LC",
                                "authority": "Falkirk"})
    assert schools.schools == (SchoolRow("Carronvale High School",
                                         "Secondary", email="p@c.example"),)


def test_a_layout_table_around_a_school_table() -> None:
    html = """<table><tr><td>
      <table><tr><td>School</td><td>Phase</td></tr>
      <tr><td>Kirkton PS</td><td>Primary</td></tr></table>
    </td></tr></table>"""
    assert only_schools(from_html(html)) == [SchoolRow("Kirkton PS",
                                                       "Primary")]


def test_html_without_tables() -> None:
    assert from_html("<p>Just a note</p>") == []


# --- pasted text --------------------------------------------------------------

def test_tab_separated_lines_are_read_and_blanked() -> None:
    text = ("Here you go.\n\nSchool\tSector\tContact\n"
            "Carronvale High School\tSecondary\tPaul Kerr\n\nThanks")
    tables, rest = from_text(text)
    assert only_schools(tables) == [
        SchoolRow("Carronvale High School", "Secondary", "Paul Kerr")]
    assert rest.splitlines() == ["Here you go.", "", "", "", "", "Thanks"]


def test_a_markdown_style_pipe_table() -> None:
    text = ("| Name of school | Head Teacher | E-mail | Sector |\n"
            "|---|---|---|---|\n"
            "| Kirkton PS | Fiona Baird | f@k.example | Primary |\n")
    tables, _ = from_text(text)
    assert only_schools(tables) == [
        SchoolRow("Kirkton PS", "Primary", "Fiona Baird", "f@k.example")]


def test_columns_aligned_with_spaces() -> None:
    text = ("School              Phase       Email\n"
            "Kirkton Primary     Primary     f@k.example\n")
    tables, _ = from_text(text)
    assert only_schools(tables) == [
        SchoolRow("Kirkton Primary", "Primary", email="f@k.example")]


def test_key_value_lines_with_tabs() -> None:
    tables, _ = from_text("Cluster\tCarronvale LC\nLocal Authority\tFalkirk\n")
    assert tables == [Table((), {"cluster": "Carronvale LC",
                                 "authority": "Falkirk"})]


def test_lines_that_are_not_a_table_stay() -> None:
    text = ("Morag Lindsay\nDepute Head Teacher | Glenbrae High School\n"
            "1. Kirkton PS | Fiona | f@k.example\n"
            "2. Burnside PS | Gordon | g@b.example\n")
    tables, rest = from_text(text)
    assert tables == []
    assert rest == text.rstrip("\n")


def test_a_cell_s_hidden_addresses_come_from_its_first_links_only() -> None:
    # Guards a bug found by attacking the parser: each mailto link of a
    # cell rebuilt its text, so a cell of thousands of links (nested in
    # tables that each read it again) took minutes.
    links = "".join(f'<a href="mailto:u{i}@x.example">u</a>' for i in range(50))
    html = ("<table><tr><th>School</th><th>Contact</th></tr>"
            f"<tr><td>Kirkton Primary School</td><td>{links}</td></tr></table>")
    [row] = only_schools(from_html(html))
    assert row.contact.count("@") == CELL_LINKS
    assert "<u0@x.example>" in row.contact


def test_a_list_of_names_and_addresses_alone_may_be_people() -> None:
    # Found by attacking the parser: a signature's "Name | Email" table
    # gave a person as a school, and a comment looked like a nomination.
    people = ("<table><tr><td>Name</td><td>Email</td></tr><tr><td>Ann Bee"
              "</td><td>a.bee@k.example</td></tr></table>")
    assert only_schools(from_html(people)) == []
    schools = people.replace("Ann Bee", "Kirkton Primary School")
    assert [r.school for r in only_schools(from_html(schools))] == [
        "Kirkton Primary School"]
    # Beside a phase, a bare "Name" is a school's, school word or not.
    with_phase = ("<table><tr><td>Name</td><td>Phase</td></tr><tr><td>Dalry"
                  "</td><td>Primary</td></tr></table>")
    assert [r.school for r in only_schools(from_html(with_phase))] == ["Dalry"]

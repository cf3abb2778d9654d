"""Outgoing mail, rendered from the Jinja2 templates in templates/.

Each kind of message has a plain-text template `<name>.txt`, whose first
line is `Subject: ...`, and an HTML template `<name>.html`; the message is
sent as multipart/alternative with both. Every message carries the headers
that stop other robots answering it (RFC 3834) and names its kind.

The message is written out here as the text that travels (CRLF line ends),
not through email.message: its shape is always the same, and the standard
library's header machinery cost several milliseconds a message. What goes
into a header is made safe here: a header field is one logical line, and
nothing from a template, a name or an address can start another one.

Each message carries a signed reference (mailbot/tokens.py): the school's
when it concerns one, else that of the person it goes to. It ends the
subject as "[ref ...]", begins the Message-ID and, with plus addressing,
is the plus part of the Reply-To, so that a reply proves what it answers.
Unstructured text (Subject, a display name) is folded at spaces, or written
as RFC 2047 encoded-words when it is not ASCII or has a word too long for
a line; bodies are UTF-8, sent as 7bit when they can be and as
quoted-printable (or base64, if shorter) when not.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import functools
import hashlib
import re
import secrets
import textwrap
import traceback
import urllib.parse
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
import markupsafe

from mailbot.errors import ConfigError
from mailbot.tokens import SUBJECT_LABEL, Tokens, subject_tag

KINDS = frozenset({
    "acknowledgment", "welcome", "council-notice", "invitation", "reminder",
    "comment-receipt", "completion-receipt", "visit-request",
    "validator-assignment", "digest", "missing-information", "alert",
    "command-reply",
    "support-proposal", "support-plan",  # supports.py
})
# results.py: self-review results, visits, outcomes and awards.
KINDS |= {"results-receipt", "visit-not-yet", "visit-date", "visit-date-query",
          "award-congratulations", "visit-not-yet-outcome"}
# progress.py: the 3-9 month goal.
KINDS |= {"progress-report", "progress-digest", "stall-nudge", "stall-notice",
          "where-we-stand"}
UK = ZoneInfo("Europe/London")


@dataclass(frozen=True)
class FileAttachment:
    """A file an outgoing message carries."""

    filename: str              # as the reader sees it; made safe
    content_type: str          # "text/csv"; a bad one: octet-stream
    data: bytes


@dataclass(frozen=True)
class Draft:
    """One intended message, before it is rendered."""

    key: str                   # unique: the same key is never sent twice
    kind: str                  # X-Mailbot-Kind
    template: str              # file name in templates/, without extension
    to: tuple[str, ...]
    context: dict[str, Any] = field(default_factory=dict)
    cc: tuple[str, ...] = ()
    reply_to_id: str = ""      # Message-ID this answers, if any
    references: tuple[str, ...] = ()
    not_before: datetime | None = None
    cluster_id: int | None = None
    school_id: int | None = None
    # The signed reference it carries; empty: the school's if it concerns
    # one, else that of its first recipient (see Composer.reference).
    reference: str = ""
    exempt_from_reply_limit: bool = False  # answered past the daily cap
    # Files sent with it; with any, the message is multipart/mixed.
    attachments: tuple[FileAttachment, ...] = ()


@dataclass(frozen=True)
class Composed:
    """One message built from a draft, ready to queue."""

    subject: str               # as the reader sees it, decoded
    message_id: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    raw: str                   # the whole message, CRLF line ends; ASCII
                               # unless an address itself is not
    reference: str = ""        # the signed reference it carries, if any


def long_date(value: Any) -> str:
    """'Tuesday 26 January 2027' from a date, datetime or ISO string."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        value = value.astimezone(UK) if value.tzinfo else value
    return f"{value:%A} {value.day} {value:%B %Y}"


_LIST_ITEM = re.compile(r"^\s*([-*•–]|\d+[.)])\s")


def reflow(text: str, width: int = 72) -> str:
    """Someone's own words rewrapped to `width`: lines of one paragraph are
    joined first, so that a message written 80 columns wide does not come
    out ragged; list items and blank lines are kept."""
    out: list[str] = []
    para: list[str] = []

    def flush() -> None:
        if para:
            out.extend(_wrap(" ".join(para), width))
            para.clear()

    for line in str(text).strip().splitlines():
        if not line.strip():
            flush()
            out.append("")
        elif _LIST_ITEM.match(line):
            flush()
            para.append(line.strip())
        else:
            para.append(line.strip())
    flush()
    return "\n".join(out)


def _wrap(text: str, width: int) -> list[str]:
    """textwrap.wrap(text, width, break_long_words=False,
    break_on_hyphens=False) or [""], done directly when words are apart by
    single spaces (nearly always); textwrap itself handles tabs, runs of
    spaces, which it keeps, and "words" of other white space (\xa0, say),
    which it drops at the end of a line."""
    if text.isascii() and text.isprintable():
        # The only white space printable ASCII holds is the space.
        apart = "  " not in text
    else:
        apart = not ("\t" in text or "  " in text
                     or any(map(str.isspace, text.split(" "))))
    if not apart:
        return textwrap.wrap(text, width, break_long_words=False,
                             break_on_hyphens=False) or [""]
    return _wrap_words(text, width)


def wrap(text: Any, width: int = 72) -> str:
    """The template filter `wrap(width)`: exactly what Jinja's
    `wordwrap(width, false, none, false)` gives (each line wrapped on its
    own, long words and hyphenated ones kept whole, lines joined by "\n"),
    done directly for a line whose words are apart by single spaces, and by
    textwrap, as Jinja does it, for any other: with a tab, a run of spaces,
    a space at either end, or a "word" of other white space (\\xa0, say),
    which textwrap drops at the end of a line."""
    out: list[str] = []
    for line in str(text).splitlines():
        words = line.split(" ")
        if (width > 0 and "\t" not in line and all(words)
                and not any(map(str.isspace, words))):
            out.extend(_wrap_words(line, width))
        else:
            out.append("\n".join(textwrap.wrap(
                line, width, expand_tabs=False, replace_whitespace=False,
                break_long_words=False, break_on_hyphens=False)))
    return "\n".join(out)


def _wrap_words(text: str, width: int) -> list[str]:
    """`text`, whose words are apart by single spaces, with no space at
    either end, as lines of at most `width` where the words allow."""
    lines: list[str] = []
    start = 0
    while len(text) - start > width:
        # The last space where a line from `start` may end; none: the
        # first word is longer than the width and stands alone.
        end = text.rfind(" ", start, start + width + 1)
        if end < 0:
            end = text.find(" ", start)
            if end < 0:
                break
        lines.append(text[start:end])
        start = end + 1
    lines.append(text[start:])
    return lines


@functools.lru_cache(maxsize=512)
def _rewrapped(text: str, width: int, hang: str) -> str:
    # What wrap gives here has no empty line and no line break but "\n"
    # (split() took the others out), so indenting after each "\n" is what
    # |indent does.
    wrapped = wrap(" ".join(text.split()), width - len(hang))
    return hang + wrapped.replace("\n", "\n" + " " * len(hang))


def rewrap(text: Any, width: int = 72, hang: str = "") -> str:
    """The template filter `rewrap(width)`, for plain text: the words of
    `text` (its lines joined, runs of white space made one space), wrapped
    to `width`; the same as `text.split()|join(" ")|wrap(width)`. With
    `hang` ("  1. ", say), the first line begins with it and the others are
    indented as far, within the same width: the same as `hang` followed by
    `...|wrap(width - hang|length)|indent(hang|length)`, in one step that
    is kept with the rest (measured: 3 % of building a message, para being
    called three times in a typical one). Most paragraphs of a template
    come out the same in message after message (the footer's always), so
    the recent ones are kept."""
    return _rewrapped(str(text), width, hang)


def para(text: Any, hang: str = "") -> str:
    """The template filter `para`, for plain text, used as a block
    (`{% filter para %}...{% endfilter %}`): the paragraph rewrapped to
    72 characters, with `hang` as rewrap has it, and a line break after
    it. A block filter costs a template less than a macro called with a
    body (measured: a typical message renders a sixth quicker)."""
    return rewrap(text, 72, hang) + "\n"


def br_lines(text: Any) -> markupsafe.Markup:
    """The template filter `br_lines`, for HTML: the lines of `text`, each
    escaped, joined by "<br>" and a line break; the same as writing each
    `{{ line }}` of `text.splitlines()` with `<br>` and a line break
    between them, in one step."""
    # Escaped whole, then split: escaping makes no line break.
    escaped = markupsafe.escape(markupsafe.soft_str(text))
    return markupsafe.Markup("<br>\n".join(str.splitlines(escaped)))


def long_time(value: Any) -> str:
    """'12 January 2027 at 09:30' in UK time."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    local = value.astimezone(UK)
    return f"{local.day} {local:%B %Y} at {local:%H:%M}"


# Macros of templates/_macros.* that take no arguments and use only the
# programme's settings (the globals), so write the same in every message:
# each is run once, at its first use, and its text kept (measured: 3 of
# the 15 macro calls of a typical message, about 3 % of building it).
_FIXED_MACROS = ("signature", "footer")


class _Template(jinja2.Template):
    def make_module(self, vars: dict[str, Any] | None = None,
                    shared: bool = False,
                    locals: Mapping[str, Any] | None = None
                    ) -> jinja2.environment.TemplateModule:
        """The template as imported, its fixed macros run once only."""
        module = super().make_module(vars, shared, locals)
        for name in _FIXED_MACROS:
            macro = getattr(module, name, None)
            if (isinstance(macro, jinja2.runtime.Macro)
                    and not (macro.arguments or macro.caller
                             or macro.catch_kwargs or macro.catch_varargs)):
                setattr(module, name, _Once(macro))
        return module


class _Once:
    """A macro with no arguments whose text is the same each time, run at
    the first call only. In a template it gives what the macro would:
    Markup where the caller escapes, else the text."""

    def __init__(self, macro: jinja2.runtime.Macro) -> None:
        self._macro = macro
        self._text: str | None = None

    @jinja2.pass_eval_context
    def __call__(self, eval_ctx: jinja2.nodes.EvalContext) -> str:
        if self._text is None:
            self._text = str(self._macro())
        return markupsafe.Markup(self._text) if eval_ctx.autoescape else self._text


_DICT_ATTRIBUTES = frozenset(dir(dict))


class _Environment(jinja2.Environment):
    template_class = _Template

    def make_globals(self, d: MutableMapping[str, Any] | None
                     ) -> MutableMapping[str, Any]:
        """Each template's globals as a plain dict, not Jinja's ChainMap
        over the environment's: every render copies them and every import
        compares their keys, which a ChainMap does in Python, key by key
        (measured: about 13 % of building a message). The globals are all
        set (Composer.__init__) before the first template is loaded."""
        return {**self.globals, **(d or {})}

    def getattr(self, obj: Any, attribute: str) -> Any:
        """`obj.attribute` in a template. Jinja tries the attribute first
        and the item after it; the values templates are given are mostly
        dicts, whose only attributes are their class's, so for one the
        item is taken at once, without the AttributeError first (measured:
        about 1 microsecond a look-up, 17 of them in a typical message, 5 %
        of building it)."""
        if type(obj) is dict and attribute not in _DICT_ATTRIBUTES:
            try:
                return obj[attribute]
            except KeyError:
                pass  # undefined, as Jinja makes it
        return super().getattr(obj, attribute)


class Composer:
    def __init__(self, templates: Path, sender_name: str, address: str,
                 globals_: dict[str, Any] | None = None, salt: str = "",
                 tokens: Tokens | None = None,
                 plus_addressing: bool = False) -> None:
        if not templates.is_dir():
            raise ConfigError(templates, "", "templates folder not found")
        self.folder = templates
        self.sender_name = sender_name
        self.local_part, self.domain = address.rsplit("@", 1)
        self._from = mailbox_field("From", sender_name, address)
        self.salt = salt
        # Without tokens (a preview, a check) messages carry no reference.
        self.tokens = tokens
        self.plus_addressing = plus_addressing
        self.env = _Environment(
            loader=jinja2.FileSystemLoader(str(templates)),
            autoescape=jinja2.select_autoescape(["html"]),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
            # Templates are read once, checked at start-up (check_all),
            # and not looked at on disk again for every message.
            auto_reload=False,
            # A plain dict, not the default LRU cache with its lock and
            # bookkeeping on every look-up, which an import makes too
            # (measured: 2 to 5 % of building a message); the folder holds
            # a few dozen templates.
            cache_size=-1,
        )
        self.env.filters["long_date"] = long_date
        self.env.filters["long_time"] = long_time
        self.env.filters["reflow"] = reflow
        self.env.filters["wrap"] = wrap
        self.env.filters["rewrap"] = rewrap
        self.env.filters["para"] = para
        self.env.filters["br_lines"] = br_lines
        self.env.globals.update(globals_ or {})

    def check(self, examples: Mapping[str, Mapping[str, Any]
                                      | Sequence[Mapping[str, Any]]]) -> None:
        """Render every template with example values, so that a mistake in
        one stops start-up instead of a message. Each template name gives
        one context or a list of them (examples.variants), rendered in turn;
        the first that fails is reported."""
        for name, given in examples.items():
            for context in [given] if isinstance(given, Mapping) else given:
                draft = Draft(key="check", kind="digest", template=name,
                              to=("check@example.org",), context=dict(context))
                try:
                    self.render(draft)
                except jinja2.TemplateError as exc:
                    where, line = _template_frame(exc, self.folder / name)
                    raise ConfigError(where, f"line {line}" if line else "",
                                      exc.message or str(exc)) from exc

    def render(self, draft: Draft) -> tuple[str, str, str]:
        """Subject, plain text and HTML of a draft."""
        if draft.kind not in KINDS:
            raise ValueError(f"unknown kind of message {draft.kind!r}")
        text = self.env.get_template(f"{draft.template}.txt").render(draft.context)
        html = self.env.get_template(f"{draft.template}.html").render(draft.context)
        first, _, body = text.partition("\n")
        if not first.startswith("Subject:"):
            raise ConfigError(self.folder / f"{draft.template}.txt", "",
                              "the first line it writes must be 'Subject: ...'")
        return one_line(first[len("Subject:"):]), body.lstrip("\n"), html

    def build(self, draft: Draft, now: datetime) -> Composed:
        subject, text, html = self.render(draft)
        reference = self.reference(draft)
        if reference:
            # Once, at the end, whatever the template quoted.
            subject = f"{without_tags(subject)} {subject_tag(reference)}"
        message_id = self.message_id(draft.key, reference)
        fields = [self._from]
        if reference and self.plus_addressing:
            fields.append(mailbox_field(
                "Reply-To", self.sender_name,
                f"{self.local_part}+{reference}@{self.domain}"))
        fields.append(address_field("To", draft.to))
        if draft.cc:
            fields.append(address_field("Cc", draft.cc))
        fields += [text_field("Subject", subject), date_field(now),
                   f"Message-ID: {message_id}\r\n"]
        if draft.reply_to_id and _is_message_id(draft.reply_to_id):
            # The ids come from mail as received: one that is not a plain
            # <...> is left out rather than written into a header.
            refs = [r for r in draft.references
                    if r != draft.reply_to_id and _is_message_id(r)]
            fields += [f"In-Reply-To: {draft.reply_to_id}\r\n",
                       _folded("References:", [*refs, draft.reply_to_id],
                               SOFT_LIMIT)]
        fields += ["Auto-Submitted: auto-generated\r\n",
                   "X-Auto-Response-Suppress: All\r\n",
                   f"X-Mailbot-Kind: {draft.kind}\r\n"]
        return Composed(subject=subject, message_id=message_id,
                        to=tuple(draft.to), cc=tuple(draft.cc),
                        raw="".join(fields) + (
                            _with_attachments(text, html, draft.attachments)
                            if draft.attachments else _alternative(text, html)),
                        reference=reference)

    def reference(self, draft: Draft) -> str:
        """The signed reference a draft's message carries: the one it names,
        else its school's, else its first recipient's; '' without tokens."""
        if draft.reference or self.tokens is None:
            return draft.reference
        if draft.school_id is not None:
            return self.tokens.for_school(draft.school_id)
        return self.tokens.for_person(draft.to[0]) if draft.to else ""

    def message_id(self, key: str, reference: str = "") -> str:
        # Derived from the key (and the reference, itself fixed by the
        # draft), so a message rebuilt after a crash keeps the id that
        # replies to it will carry; the record's own salt keeps ids apart
        # between records (a demo, a fresh start).
        seed = f"{self.salt}:{key}".encode()
        digest = hashlib.sha256(seed).hexdigest()[:24]
        return f"<{reference or 'mailbot'}.{digest}@{self.domain}>"


# Our own tag in a subject, signed or not: "[ref s12-k3j4h5g6m7]".
_TAG = re.compile(rf"\[{SUBJECT_LABEL} (?:s[0-9]+|p)-[a-z2-7]+\]",
                  re.IGNORECASE)


def without_tags(subject: str) -> str:
    """A subject without the references mailbot puts in subjects, so that
    quoting one (a reply's, in a digest or a template) does not pile them
    up: "Re: Your comment [ref s3-...]" becomes "Re: Your comment"."""
    return one_line(_TAG.sub(" ", subject))


def one_line(value: str) -> str:
    """A header value with no line breaks, control characters or runs of
    spaces, and nothing a reader could take for an encoded-word."""
    text = " ".join(_CONTROL.sub(" ", value).split())
    return text.replace("=?", "= ?")


_CONTROL = re.compile(r"[\x00-\x1f\x7f\u202a-\u202e\u2066-\u2069]")


def _template_frame(exc: jinja2.TemplateError, fallback: Path
                    ) -> tuple[Path, int | None]:
    """The template file and line an error came from, as far as known."""
    if isinstance(exc, jinja2.TemplateSyntaxError) and exc.filename:
        return Path(exc.filename), exc.lineno
    # Jinja2 rewrites tracebacks so that template lines appear as frames.
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename.endswith((".txt", ".html")):
            return Path(frame.filename), frame.lineno
    return fallback, None


# -- the message as it travels -------------------------------------------
#
# RFC 5322 limits a line to 998 characters and asks for 78; RFC 2047 limits
# a line holding encoded-words to 76 and an encoded-word to 75. A header
# field is written whole, folded, with its CRLF: continuation lines begin
# with a space, and no value holds a CR or LF of its own.

SOFT_LIMIT = 78
HARD_LIMIT = 998
_EW_LINE = 76
_EW_MAX = 75
_EW_START, _EW_END = "=?utf-8?q?", "?="
# The longest word written as it is; longer ones go as encoded-words, which
# may be split anywhere.
_LONGEST_WORD = 900

_ATEXT = r"A-Za-z0-9!#$%&'*+/=?^_`{|}~-"
_ATOM = re.compile(rf"[{_ATEXT}]+")
_PHRASE = re.compile(rf"[{_ATEXT}]+(?: [{_ATEXT}]+)*")
_LOCAL_PART = re.compile(rf"[{_ATEXT}\u0080-\U0010ffff]+"
                         rf"(?:\.[{_ATEXT}\u0080-\U0010ffff]+)*")
_MESSAGE_ID = re.compile(r"<[\x21-\x3b\x3d\x3f-\x7e]+>")
# Characters an encoded-word in a phrase may carry as they are (RFC 2047
# section 5, rule 3); a space is "_", everything else =XX of its UTF-8.
_Q_PLAIN = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                     "0123456789!*+-/")


def _is_message_id(value: str) -> bool:
    return len(value) <= _LONGEST_WORD and bool(_MESSAGE_ID.fullmatch(value))


def _folded(head: str, words: Sequence[str], limit: int) -> str:
    """`head` ("Name:") and the words, apart by single spaces, as lines of
    at most `limit` where the words allow; with the final CRLF."""
    lines: list[str] = []
    line = head
    for word in words:
        if line == head or len(line) + 1 + len(word) <= limit:
            line += " " + word
        else:
            lines.append(line)
            line = " " + word
    lines.append(line)
    return "\r\n".join(lines) + "\r\n"


def _q(char: str) -> str:
    if char in _Q_PLAIN:
        return char
    if char == " ":
        return "_"
    return "".join(f"={b:02X}" for b in char.encode("utf-8", "replace"))


def _encoded_words(text: str, first: int) -> list[str]:
    """`text` as Q encoded-words, the first at most `first` long and the
    rest at most 75; each holds whole characters."""
    words: list[str] = []
    room = max(first, 30) - len(_EW_START) - len(_EW_END)
    chunk: list[str] = []
    used = 0
    for char in text:
        code = _q(char)
        if chunk and used + len(code) > room:
            words.append(_EW_START + "".join(chunk) + _EW_END)
            chunk, used = [], 0
            room = _EW_MAX - len(_EW_START) - len(_EW_END)
        chunk.append(code)
        used += len(code)
    if chunk:
        words.append(_EW_START + "".join(chunk) + _EW_END)
    return words


def _mixed(words: Sequence[str], plain: Callable[[str], bool],
           first: int) -> list[str]:
    """The words, each run of those that cannot go as they are made into
    encoded-words, the spaces inside the run included: a reader drops the
    space between two encoded-words, and keeps the one between a word and
    one. `first` is the room for an encoded-word that starts the field."""
    pieces: list[str] = []
    run: list[str] = []
    for word in [*words, ""]:
        if word and not plain(word):
            run.append(word)
            continue
        if run:
            pieces += _encoded_words(" ".join(run),
                                     _EW_MAX if pieces else first)
            run = []
        if word:
            pieces.append(word)
    return pieces


def _plain_text(word: str) -> bool:
    return word.isascii() and len(word) <= _LONGEST_WORD


def text_field(name: str, value: str) -> str:
    """An unstructured header field such as Subject. The value is made one
    line first (`one_line`), so that it can neither start a header of its
    own nor hold text a reader would decode as an encoded-word."""
    value = one_line(value)
    if not value:
        return f"{name}:\r\n"
    words = value.split(" ")
    if all(map(_plain_text, words)):
        return _folded(f"{name}:", words, SOFT_LIMIT)
    return _folded(f"{name}:", _mixed(words, _plain_text, _EW_LINE - len(name) - 2),
                   _EW_LINE)


def addr_spec(address: str) -> str:
    """An address as written in a header: the local part quoted when it
    needs to be. Raises ValueError for one that cannot be written in a
    header at all (a control character, or absurdly long)."""
    local, at, domain = address.rpartition("@")
    if not at:
        local, domain = address, ""
    if not _LOCAL_PART.fullmatch(local):
        local = _quoted(local)
    spec = f"{local}{at}{domain}"
    if _CONTROL.search(spec) or len(spec) > _LONGEST_WORD:
        raise ValueError(f"cannot write {address!r} in a header")
    return spec


def _quoted(text: str) -> str:
    """A quoted-string (RFC 5322 3.2.4) holding `text`."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def address_field(name: str, addresses: Sequence[str]) -> str:
    """To or Cc: bare addresses, folded between them."""
    specs = [addr_spec(a) for a in addresses]
    words = [f"{spec}," for spec in specs[:-1]] + specs[-1:]
    return _folded(f"{name}:", words, SOFT_LIMIT)


def mailbox_field(name: str, display_name: str, address: str) -> str:
    """A field with one named address, 'Name <address>' (From)."""
    spec = f"<{addr_spec(address)}>"
    display = one_line(display_name)
    if not display:
        return _folded(f"{name}:", [spec], SOFT_LIMIT)
    if display.isascii() and _PHRASE.fullmatch(display) \
            and max(map(len, display.split(" "))) <= _LONGEST_WORD:
        return _folded(f"{name}:", [*display.split(" "), spec], SOFT_LIMIT)
    if display.isascii() and len(_quoted(display)) <= _LONGEST_WORD:
        return _folded(f"{name}:", [_quoted(display), spec], SOFT_LIMIT)
    # Words that are atoms stay as they are. (Python's own parser, unlike
    # RFC 2047, keeps the space between two encoded-words in a name, so a
    # long run of other words reads back with spaces added there.)
    words = _mixed(display.split(" "), lambda word: bool(_ATOM.fullmatch(word)),
                   _EW_LINE - len(name) - 2)
    return _folded(f"{name}:", [*words, spec], _EW_LINE)


def date_field(now: datetime) -> str:
    return f"Date: {email.utils.format_datetime(now)}\r\n"


def _not_7bit(text: str) -> bool:
    """Whether text (with \\n line ends) cannot go as it is: not ASCII, a
    control character, or a line over RFC 5322's limit."""
    # ASCII: what is left once tab, line break and the printable
    # characters are taken out is a control character.
    return (not text.isascii()
            or bool(text.encode("ascii").translate(None, _7BIT_PLAIN))
            or _has_long_line(text))


_7BIT_PLAIN = bytes(range(0x20, 0x7f)) + b"\t\n"
# A line longer than HARD_LIMIT holds a whole stretch of this many
# characters that begins at a multiple of it.
_STRETCH = (HARD_LIMIT + 1) // 2


def _has_long_line(text: str) -> bool:
    """Whether a line of `text` (\\n line ends) is over HARD_LIMIT. The
    lines are measured only when some stretch of `_STRETCH` characters at
    a multiple of it has no line break: while every one has one, no line
    is that long."""
    if all(text.find("\n", start, start + _STRETCH) >= 0
           for start in range(0, len(text) - _STRETCH + 1, _STRETCH)):
        return False
    return max(map(len, text.split("\n"))) > HARD_LIMIT


def _body(subtype: str, text: str) -> tuple[str, str]:
    """A text part's headers and body, UTF-8, with CRLF line ends; the
    line breaks in `text` may be CR, LF or CRLF."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.endswith("\n"):
        text += "\n"
    if not _not_7bit(text[:-1]):
        encoding, body = "7bit", text.replace("\n", "\r\n")
    else:
        data = text.replace("\n", "\r\n").encode("utf-8", "replace")
        quoted = binascii.b2a_qp(data, istext=True)
        if len(quoted) <= len(data) * 4 // 3:  # else base64 is shorter
            encoding, body = "quoted-printable", quoted.decode("ascii")
        else:
            encoding = "base64"
            body = base64.encodebytes(data).decode("ascii").replace("\n", "\r\n")
    head = (f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
            f"Content-Transfer-Encoding: {encoding}\r\n\r\n")
    return head, body


def _alternative(text: str, html: str) -> str:
    """The MIME headers and body of a multipart/alternative message with
    a plain-text and an HTML part."""
    parts = [_body("plain", text), _body("html", html)]
    # "=_" is never in quoted-printable or base64; a 7bit body is checked.
    while True:
        boundary = "=_" + secrets.token_hex(12)
        if not any(boundary in body for _, body in parts):
            break
    out = ["MIME-Version: 1.0\r\n",
           f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n',
           "\r\n"]
    for head, body in parts:
        out += [f"--{boundary}\r\n", head, body, "\r\n"]
    out.append(f"--{boundary}--\r\n")
    return "".join(out)


# -- attachments --------------------------------------------------------------

_CONTENT_TYPE = re.compile(r"[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+"
                           r"(?:; ?charset=\"?[A-Za-z0-9_.:-]+\"?)?")
# Characters a quoted filename may hold as they are.
_PLAIN_NAME = re.compile(r"[A-Za-z0-9 !#$&'()+,.;=@\[\]^_`{}~-]+")
_MAX_NAME = 120
_PARAM_CHUNK = 60
_ENCODED_CHUNK = 48  # a continuation line stays within 78


def _safe_filename(name: str) -> str:
    """A filename with no folders, control characters or quotes, at most
    `_MAX_NAME` characters; "attachment" if nothing is left."""
    name = _CONTROL.sub("", name).replace("\\", "/").rsplit("/", 1)[-1]
    name = " ".join(name.replace('"', "'").split()).strip(". ")
    return name[:_MAX_NAME] or "attachment"


def _parameter(name: str, value: str) -> list[str]:
    """A MIME parameter: quoted if it is plain ASCII, else RFC 2231
    (UTF-8, percent-encoded, split into continuations to keep lines
    short); one string per line."""
    if _PLAIN_NAME.fullmatch(value) and len(value) <= _PARAM_CHUNK:
        return [f'{name}="{value}"']
    encoded = urllib.parse.quote(value, safe="")
    chunks: list[str] = []
    while encoded:
        cut = min(_ENCODED_CHUNK, len(encoded))
        # never inside a %XX
        percent = encoded.rfind("%", max(0, cut - 2), cut)
        if percent >= 0 and cut < len(encoded):
            cut = percent
        chunks.append(encoded[:cut])
        encoded = encoded[cut:]
    if len(chunks) == 1:
        return [f"{name}*=utf-8''{chunks[0]}"]
    return [f"{name}*{n}*=" + ("utf-8''" if n == 0 else "") + chunk
            for n, chunk in enumerate(chunks)]


def _attachment_part(attachment: FileAttachment) -> str:
    """The headers and base64 body of one attached file."""
    content_type = " ".join(attachment.content_type.split())
    if not _CONTENT_TYPE.fullmatch(content_type):
        content_type = "application/octet-stream"
    filename = _safe_filename(attachment.filename)
    type_params = ";\r\n ".join([content_type, *_parameter("name", filename)])
    disposition = ";\r\n ".join(["attachment",
                                   *_parameter("filename", filename)])
    data = base64.encodebytes(attachment.data).decode("ascii")
    return (f"Content-Type: {type_params}\r\n"
            f"Content-Disposition: {disposition}\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n"
            + data.replace("\n", "\r\n"))


def _with_attachments(text: str, html: str,
                      attachments: Sequence[FileAttachment]) -> str:
    """The MIME headers and body of a multipart/mixed message: the
    multipart/alternative of `_alternative`, then each file."""
    inner = _alternative(text, html).removeprefix("MIME-Version: 1.0\r\n")
    parts = [inner, *map(_attachment_part, attachments)]
    while True:
        boundary = "=_" + secrets.token_hex(12)
        if not any(boundary in part for part in parts):
            break
    out = ["MIME-Version: 1.0\r\n",
           f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n',
           "\r\n"]
    for part in parts:
        out += [f"--{boundary}\r\n", part, "\r\n"]
    out.append(f"--{boundary}--\r\n")
    return "".join(out)


# -- changing a message already written ------------------------------------

def replace_fields(raw: str, fields: Mapping[str, str | None]) -> str:
    """`raw` with the header fields named in `fields` replaced: each by the
    whole field given (as the functions above write it), or removed where
    None. A field replaced takes the place of the first one of its name
    and every other of that name goes; a field the message lacks is added
    at the end of the header block. Nothing else changes, the body least
    of all. Works on the text alone: nothing is parsed or decoded, so no
    encoded-word in a header can turn into a line break.

    Raises ValueError if `raw` has no header block."""
    eol = "\r\n" if "\r\n" in raw[:raw.find("\n") + 1] else "\n"
    if raw.startswith(eol):
        end = 0
    else:
        end = raw.find(eol + eol)
        if end < 0:
            raise ValueError("the message has no end to its header block")
        end += len(eol)
    wanted = {name.lower(): value for name, value in fields.items()}
    for value in wanted.values():
        if value is not None and not _WHOLE_FIELD.fullmatch(value):
            raise ValueError(f"not a header field: {value!r}")
    done: set[str] = set()
    out: list[str] = []
    dropping = False
    for line in raw[:end].split(eol)[:-1]:
        if line[:1] in (" ", "\t"):  # the rest of a folded field
            if not dropping:
                out.append(line + eol)
            continue
        name = line.split(":", 1)[0].strip().lower()
        dropping = name in wanted
        if not dropping:
            out.append(line + eol)
        elif name not in done:
            done.add(name)
            out.append(_with_eol(wanted[name] or "", eol))
    out += [_with_eol(value, eol) for name, value in wanted.items()
            if name not in done and value is not None]
    return "".join(out) + raw[end:]


# A field as written above: a name, lines with no CR or LF of their own,
# each after the first beginning with a space, and the final CRLF.
_WHOLE_FIELD = re.compile(r"[!-9;-~]+:[^\r\n]*\r\n(?:[ \t][^\r\n]*\r\n)*")


def _with_eol(field: str, eol: str) -> str:
    return field if eol == "\r\n" else field.replace("\r\n", eol)

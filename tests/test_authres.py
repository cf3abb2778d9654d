"""Authentication-Results (RFC 8601), as real receiving servers write them,
and as forgers would like them read."""

from __future__ import annotations

import pytest
from harness import make_mail

from mailbot import authres, mail
from mailbot.authres import AuthResults, parse, trusted_block, verdict

SENDER = "coordinator@dsa.example.org"

GOOGLE = """mx.google.com;
       dkim=pass header.i=@dsa.example.org header.s=google header.b=Xy1+Zz9a;
       spf=pass (google.com: domain of coordinator@dsa.example.org designates
 209.85.220.41 as permitted sender) smtp.mailfrom=coordinator@dsa.example.org;
       dmarc=pass (p=QUARANTINE sp=QUARANTINE dis=NONE) header.from=dsa.example.org"""

# Microsoft 365 names no authserv-id at all.
MICROSOFT = """spf=pass (sender IP is 40.107.22.54)
 smtp.mailfrom=dsa.example.org; dkim=pass (signature was verified)
 header.d=dsa.example.org;dmarc=pass action=none
 header.from=dsa.example.org;compauth=pass reason=100"""

FASTMAIL = """mx3.messagingengine.com;
    dkim=pass (2048-bit rsa key sha256) header.d=dsa.example.org
      header.i=@dsa.example.org header.b=AbCdEf12 header.a=rsa-sha256
      header.s=fm3 x-bits=2048;
    dmarc=pass policy.published-domain-policy=reject
      policy.applied-disposition=none policy.evaluated-disposition=none
      (p=reject,d=none,d.eval=none) policy.policy-from=p
      header.from=dsa.example.org;
    iprev=pass smtp.remote-ip=192.0.2.10 (mail.dsa.example.org);
    spf=pass smtp.mailfrom=coordinator@dsa.example.org
      smtp.helo=mail.dsa.example.org"""

OPENDKIM = """mail.example.org; dkim=pass (2048-bit key;
 unprotected) header.d=dsa.example.org header.i=@dsa.example.org
 header.a=rsa-sha256 header.s=mail header.b="Ab;Cd=Ef"; dkim-atps=neutral"""
OPENDMARC = ("mail.example.org; dmarc=pass (p=reject dis=none) "
             "header.from=dsa.example.org")
OPENDMARC_FAIL = OPENDMARC.replace("dmarc=pass", "dmarc=fail")


def test_google() -> None:
    parsed = parse(GOOGLE)
    assert parsed.authserv_id == "mx.google.com"
    assert [(r.method, r.result) for r in parsed.results] == [
        ("dkim", "pass"), ("spf", "pass"), ("dmarc", "pass")]
    assert parsed.results[0].prop("header.i") == "@dsa.example.org"
    assert parsed.results[2].prop("header.from") == "dsa.example.org"
    ok, why = verdict([parsed], SENDER)
    assert ok and why == "dmarc=pass for dsa.example.org (mx.google.com)"


def test_microsoft_names_no_server_and_is_never_trusted() -> None:
    parsed = parse(MICROSOFT)
    assert parsed.authserv_id == ""
    assert [r.method for r in parsed.results] == ["spf", "dkim", "dmarc",
                                                  "compauth"]
    assert parsed.results[3].reason == "100"
    assert trusted_block([("Authentication-Results", MICROSOFT)],
                         ["mx.google.com"]) == []


def test_fastmail() -> None:
    parsed = parse(FASTMAIL)
    assert parsed.authserv_id == "mx3.messagingengine.com"
    dmarc = parsed.results[1]
    assert dmarc.method == "dmarc" and dmarc.result == "pass"
    assert dmarc.prop("policy.published-domain-policy") == "reject"
    assert dmarc.prop("header.from") == "dsa.example.org"
    assert verdict([parsed], SENDER)[0]


def test_opendkim_and_opendmarc_with_a_version_and_quoted_values() -> None:
    parsed = parse(OPENDKIM)
    assert parsed.results[0].prop("header.b") == "Ab;Cd=Ef"
    assert [r.method for r in parsed.results] == ["dkim", "dkim-atps"]
    versioned = parse("mail.example.org 1; none")
    assert versioned == AuthResults("mail.example.org", "1", ())
    fields = [("Authentication-Results", OPENDMARC),
              ("Authentication-Results", OPENDKIM)]
    block = trusted_block(fields, ["mail.example.org"])
    assert len(block) == 2
    assert verdict(block, SENDER)[0]


def test_a_comment_saying_pass_is_not_a_pass() -> None:
    parsed = parse("mx.example.org; dkim=fail (dkim=pass; dmarc=pass "
                   "header.from=dsa.example.org) header.d=dsa.example.org")
    assert [(r.method, r.result) for r in parsed.results] == [("dkim", "fail")]
    assert not verdict([parsed], SENDER)[0]
    nested = parse("mx.example.org; (a (nested \\) comment; dmarc=pass) "
                   "here) dkim=neutral header.d=dsa.example.org")
    assert [(r.method, r.result) for r in nested.results] == [("dkim", "neutral")]


def test_case_does_not_matter() -> None:
    parsed = parse("MX.Example.ORG; DKIM=Pass Header.D=DSA.Example.Org")
    assert parsed.authserv_id == "mx.example.org"
    assert trusted_block([("AUTHENTICATION-RESULTS", ("MX.Example.ORG; "
                           "DKIM=Pass Header.D=DSA.Example.Org"))],
                         ["mx.example.org"]) == [parsed]
    assert verdict([parsed], "Coordinator@DSA.example.org")[0]


def test_a_pass_must_be_for_the_senders_domain() -> None:
    for header in ("mx.example.org; dkim=pass header.d=mailchimp.example",
                   "mx.example.org; dmarc=pass header.from=evil.example",
                   "mx.example.org; dkim=pass header.d=sub.dsa.example.org",
                   "mx.example.org; spf=pass smtp.mailfrom=dsa.example.org",
                   "mx.example.org; none"):
        ok, why = verdict([parse(header)], SENDER)
        assert not ok, header
        assert "not a DMARC or DKIM pass for dsa.example.org" in why
    # header.i alone names the domain too.
    assert verdict([parse("mx.example.org; dkim=pass "
                          "header.i=coordinator@dsa.example.org")], SENDER)[0]


def test_another_server_is_ignored_above_or_below() -> None:
    forged = "mx.evil.example; dkim=pass header.d=dsa.example.org"
    fields = [("Authentication-Results", forged),
              ("Received", "from a by mx.example.org"),
              ("Authentication-Results", OPENDMARC_FAIL),
              ("Authentication-Results", forged)]
    block = trusted_block(fields, ["mail.example.org"])
    assert [b.authserv_id for b in block] == ["mail.example.org"]
    ok, why = verdict(block, SENDER)
    assert not ok and "dmarc=fail" in why


def test_only_the_topmost_block_counts() -> None:
    fields = [("Received", "from a by mail.example.org"),
              ("Authentication-Results", OPENDMARC_FAIL),
              ("Received", "from evil by mail.evil.example"),
              ("Authentication-Results", OPENDMARC)]
    assert not verdict(trusted_block(fields, ["mail.example.org"]), SENDER)[0]


def test_a_forged_pass_right_below_a_fail_is_a_conflict() -> None:
    fields = [("Authentication-Results", OPENDMARC_FAIL),
              ("Authentication-Results", OPENDKIM)]
    ok, why = verdict(trusted_block(fields, ["mail.example.org"]), SENDER)
    assert not ok and "both pass and not" in why


def test_a_failing_signature_of_another_domain_does_not_spoil_a_pass() -> None:
    header = ("mx.example.org; dkim=pass header.d=dsa.example.org; "
              "dkim=fail header.d=list.example.net")
    assert verdict([parse(header)], SENDER)[0]


@pytest.mark.parametrize("noise", [
    "", ";;;", "mx.example.org;", "mx.example.org; dkim", "mx.example.org; =pass",
    '"mx.example.org', "mx.example.org; dkim=pass (unclosed comment",
    "mx.example.org; dkim=\"pass\" header.d=dsa.example.org",
])
def test_noise_never_passes(noise: str) -> None:
    assert not verdict([parse(noise)], SENDER)[0]


def test_authenticated_reads_the_message() -> None:
    top = ("Received: from mail.dsa.example.org by mx.google.com\r\n"
           "Authentication-Results: " + GOOGLE.replace("\n", "\r\n") + "\r\n")
    raw = top.encode() + make_mail(SENDER, "Commands", "award Kirkton\n")
    incoming = mail.parse(raw)
    assert authres.authenticated(incoming, ("mx.google.com",), SENDER)[0]
    ok, why = authres.authenticated(incoming, ("mx.example.org",), SENDER)
    assert not ok and "no Authentication-Results from a trusted server" in why
    ok, why = authres.authenticated(incoming, (), SENDER)
    assert not ok and "authserv_ids is empty" in why
    assert not authres.authenticated(incoming, ("mx.google.com",),
                                     "someone@evil.example")[0]

"""The `mailbot` command line."""

from __future__ import annotations

import argparse
import json
import logging
import os
import stat
import sys
from collections.abc import Sequence

from mailbot import config as config_module
from mailbot.clock import SystemClock
from mailbot.compose import Draft
from mailbot.errors import ConfigError, MailbotError, StoreLockedError
from mailbot.logsafe import printable, printable_json

log = logging.getLogger("mailbot")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = config_module.load(config_module.config_path(args.config))
    except ConfigError as exc:
        print(f"mailbot: {printable(str(exc))}", file=sys.stderr)
        return 2
    _logging(config.log_level, args.verbose, config)
    try:
        return int(args.func(config, args) or 0)
    except ConfigError as exc:
        print(f"mailbot: {printable(str(exc))}", file=sys.stderr)
        return 2
    except MailbotError as exc:
        print(f"mailbot: {printable(str(exc))}", file=sys.stderr)
        return 1
    except OSError as exc:
        # A disk full or read-only, a folder not ours: said in one line,
        # with the file, rather than as a traceback.
        log.debug("stopped by", exc_info=True)
        print(f"mailbot: cannot go on: {printable(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mailbot",
        description="The email side of the Digital Schools Awards "
                    "Cluster Initiative.")
    parser.add_argument("--config", metavar="PATH",
                        help="config file (default: $MAILBOT_CONFIG, "
                             "else ./config.toml)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log at DEBUG level")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="read the inbox and send what is due")
    run.add_argument("--once", action="store_true",
                     help="one poll and one sweep, then exit")
    run.set_defaults(func=cmd_run)

    commands.add_parser("status", help="clusters and schools as a table") \
        .set_defaults(func=cmd_status)
    commands.add_parser("export", help="the whole record as JSON") \
        .set_defaults(func=cmd_export)

    digest = commands.add_parser("digest", help="the staff digest")
    digest.add_argument("--preview", action="store_true", required=True,
                        help="print the digest as it would be sent now, "
                             "without sending it")
    digest.set_defaults(func=cmd_digest)

    commands.add_parser("check-config",
                        help="check the config, rules and templates") \
        .set_defaults(func=cmd_check_config)

    aside = commands.add_parser(
        "set-aside", help="mail set aside for a person: list, show, replay")
    actions = aside.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="one line per message waiting") \
        .set_defaults(func=cmd_set_aside_list)
    show = actions.add_parser("show", help="one message: its record, "
                              "headers and text")
    show.add_argument("id", help="the id `set-aside list` shows")
    show.set_defaults(func=cmd_set_aside_show)
    replay = actions.add_parser(
        "replay", help="handle a message again, as if new (after a fix or "
                       "a config change); the daemon must be stopped")
    replay.add_argument("id", help="the id `set-aside list` shows")
    replay.set_defaults(func=cmd_set_aside_replay)

    privacy = commands.add_parser(
        "privacy", help="personal data held about one address: export or "
                        "erase it")
    privacy_actions = privacy.add_subparsers(dest="action", required=True)
    access = privacy_actions.add_parser(
        "export", help="everything held about an address, as JSON (a "
                       "subject access request)")
    access.add_argument("address")
    access.add_argument("--out", metavar="FILE",
                        help="write to FILE (made readable by its owner "
                             "only) instead of standard output")
    access.set_defaults(func=cmd_privacy_export)
    erase = privacy_actions.add_parser(
        "erase", help="replace a person's details by a placeholder and "
                      "remove copies of their mail; the daemon must be "
                      "stopped")
    erase.add_argument("address")
    erase.add_argument("--yes", action="store_true",
                       help="do it (without: only say what would change)")
    erase.set_defaults(func=cmd_privacy_erase)

    demo = commands.add_parser(
        "demo", help="play the bundled sample mail through a fresh mailbot")
    demo.add_argument("--dir", default="data/demo", metavar="PATH",
                      help="where the demo keeps its mail and record, "
                           "relative to the config file (default data/demo)")
    demo.set_defaults(func=cmd_demo)
    return parser


def _logging(level: str, verbose: bool,
             config: config_module.Config | None = None) -> None:
    # Before any handler is set up: every record made from here on has
    # the configured passwords and LOGIN/AUTH arguments redacted.
    from mailbot import logsafe
    logsafe.install(logsafe.secrets_of(config) if config else ())
    logging.basicConfig(
        level=logging.DEBUG if verbose else getattr(logging, level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr)
    # mail-parser reports every MIME part it does not know at WARNING, and
    # APScheduler logs every run of every job at INFO.
    logging.getLogger("mailparser").setLevel(logging.ERROR)
    if not verbose:
        logging.getLogger("apscheduler").setLevel(logging.WARNING)


def cmd_run(config: config_module.Config, args: argparse.Namespace) -> int:
    from mailbot import daemon
    from mailbot.app import open_mailbot

    _warn_if_readable(config)
    bot = open_mailbot(config, SystemClock())
    try:
        if args.once:
            return 0 if daemon.cycle(bot) else 1
        daemon.run_forever(bot)
    finally:
        bot.close()
    return 0


def cmd_status(config: config_module.Config, args: argparse.Namespace) -> int:
    from mailbot.report import status_table
    from mailbot.store import Store

    store = Store(config.store_path)
    sys.stdout.write(printable(status_table(store, SystemClock().now())))
    return 0


def cmd_export(config: config_module.Config, args: argparse.Namespace) -> int:
    from mailbot.report import export
    from mailbot.store import Store

    store = Store(config.store_path)
    sys.stdout.write(printable_json(
        json.dumps(export(store), ensure_ascii=False, indent=2)) + "\n")
    return 0


def cmd_digest(config: config_module.Config, args: argparse.Namespace) -> int:
    from mailbot import digest
    from mailbot.app import composer_for
    from mailbot.store import Store

    store = Store(config.store_path)
    now = SystemClock().now()
    context = digest.context(store, now, store.get_meta("digest_at"))
    subject, text, _ = composer_for(config).render(Draft(
        key="preview", kind="digest", template="digest", to=config.staff,
        context=context))
    sys.stdout.write(printable(
        f"To: {', '.join(config.staff)}\nSubject: {subject}\n\n{text}"))
    return 0


def cmd_check_config(config: config_module.Config,
                     args: argparse.Namespace) -> int:
    from mailbot.app import composer_for, load_rules

    load_rules(config)
    composer_for(config)
    _warn_if_readable(config)
    for section, server in (("mailbox", config.mailbox),
                            ("sending", config.sending)):
        if server.kind in ("imap", "smtp"):
            for secret in _secrets(server):
                secret.value()  # raises, naming what is not set
            if server.security == "none" and not config_module.is_loopback(
                    server.host):
                print(f"warning: {section}.security = \"none\" sends the "
                      f"password in clear to {server.host}")
    missing = [c for c in config_module.COUNCILS if c not in config.councils]
    if missing:
        print(f"note: no contact for {len(missing)} councils: "
              + ", ".join(missing))
    if not config.validators:
        print("note: the validator pool is empty; finished clusters will wait")
    print(f"{config.path}: OK ({len(config.validators)} validators, "
          f"{len(config.councils)} council contacts, mailbox "
          f"{config.mailbox.kind}, sending {config.sending.kind})")
    return 0


def cmd_set_aside_list(config: config_module.Config,
                       args: argparse.Namespace) -> int:
    from mailbot import setaside
    from mailbot.store import Store

    sys.stdout.write(setaside.listing(Store(config.store_path)))
    return 0


def cmd_set_aside_show(config: config_module.Config,
                       args: argparse.Namespace) -> int:
    from mailbot import setaside
    from mailbot.store import Store

    sys.stdout.write(setaside.show(Store(config.store_path), args.id))
    return 0


def cmd_set_aside_replay(config: config_module.Config,
                         args: argparse.Namespace) -> int:
    from mailbot import setaside
    from mailbot.app import open_mailbot

    try:
        bot = open_mailbot(config, SystemClock())
    except StoreLockedError as exc:
        print(f"mailbot: cannot replay while mailbot is running: {exc}\n"
              "mailbot: stop the daemon first (it finishes the message in "
              "hand), replay, then start it again", file=sys.stderr)
        return 1
    try:
        new = setaside.replay(bot.pipeline, args.id)
    finally:
        bot.close()
    sys.stdout.write(setaside.replayed(args.id.strip().lower(), new))
    return 0


def cmd_privacy_export(config: config_module.Config,
                       args: argparse.Namespace) -> int:
    from mailbot import privacy
    from mailbot.store import Store

    data = privacy.subject_access(Store(config.store_path), config,
                                  args.address, SystemClock().now())
    text = printable_json(json.dumps(data, ensure_ascii=False, indent=2)) + "\n"
    if not args.out:
        sys.stdout.write(text)
        return 0
    # Personal data: readable by the owner alone, whatever the umask.
    fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        os.fchmod(out.fileno(), 0o600)
        out.write(text)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def cmd_privacy_erase(config: config_module.Config,
                      args: argparse.Namespace) -> int:
    from mailbot import privacy
    from mailbot.store import Store

    store = Store(config.store_path)
    try:
        if args.yes:  # only saying what would change needs no lock
            store.lock()
    except StoreLockedError as exc:
        print(f"mailbot: cannot erase while mailbot is running: {exc}\n"
              "mailbot: stop the daemon first, erase, then start it again",
              file=sys.stderr)
        return 1
    try:
        done = privacy.erase(store, config, args.address,
                             SystemClock().now(), apply=args.yes)
    finally:
        store.close()

    # Names and subjects from the record: shown, never acted on.
    def say(text: str) -> None:
        print(printable(text))

    if done.nothing:
        say(f"Nothing is held about {done.address}.")
        return 0
    withdrawn = "".join(f"\n  {item}" for item in done.withdrawn)
    if not done.done:
        say(f"Held about {done.address}: {done.summary()}.")
        if withdrawn:
            say("Queued mail that would be withdrawn, not sent:" + withdrawn)
        say("Run again with --yes to erase it.")
        return 0
    say(f"Erased {done.address}, now {done.placeholder} in the record: "
        f"{done.summary()}.")
    if withdrawn:
        say("Queued mail withdrawn, not sent:" + withdrawn)
    say("Still held elsewhere:"
        + "".join(f"\n  {line}" for line in done.elsewhere))
    return 0


def cmd_demo(config: config_module.Config, args: argparse.Namespace) -> int:
    from mailbot.demo import run_demo

    return run_demo(config, args.dir)


def _secrets(server: config_module.MailboxConfig | config_module.SendingConfig
             ) -> list[config_module.Secret]:
    """Where a mail server's login comes from: the password, or the OAuth
    client secret and refresh token."""
    if server.oauth is None:
        return [server.password]
    found = [server.oauth.client_secret]
    if server.oauth.refresh_token.env or server.oauth.refresh_token.file:
        found.append(server.oauth.refresh_token)
    return found


def _warn_if_readable(config: config_module.Config) -> None:
    """A warning for the config, and each file holding a password, that
    other users may read: the config names the programme's people and
    where its secrets are."""
    files = [secret.file for server in (config.mailbox, config.sending)
             for secret in _secrets(server) if secret.file is not None]
    for path in [config.path, *files]:
        try:
            mode = os.stat(path).st_mode
        except OSError:
            continue  # a missing password file is named when it is read
        if not mode & (stat.S_IRGRP | stat.S_IROTH):
            continue
        if path == config.path:
            log.warning("%s is readable by other users: chmod 600 it",
                        config.path)
        else:
            log.warning("%s holds a password or secret and is readable "
                        "by other users: chmod 600 it", path)
